using ClipSharp.Export.OnnxIr;
using ClipSharp.Modeling;
using static TorchSharp.torch;
using DataType = ClipSharp.Export.OnnxIr.TensorProto.Types.DataType;

namespace ClipSharp.Export;

/// <summary>The float32 weights of a loaded model by state_dict key, with their shapes.</summary>
internal sealed class ModelWeights
{
    readonly Dictionary<string, (float[] Data, long[] Shape)> map = new(StringComparer.Ordinal);

    public ModelWeights(ClipModel model)
    {
        foreach (var (key, tensor) in model.state_dict())
        {
            if (tensor.dtype == ScalarType.Int64) continue; // BatchNorm counters
            using var scope = NewDisposeScope();
            var f = tensor.detach().to(ScalarType.Float32).contiguous();
            map[key] = (f.data<float>().ToArray(), f.shape);
        }
    }

    public bool Has(string key) => map.ContainsKey(key);

    public float[] Data(string key) => Get(key).Data;

    public long[] Shape(string key) => Get(key).Shape;

    (float[] Data, long[] Shape) Get(string key) =>
        map.TryGetValue(key, out var v) ? v : throw new InvalidOperationException($"ONNX export: the model has no weight {key}");

    /// <summary>The transpose of a [rows, cols] matrix, row-major.</summary>
    public static float[] Transpose(float[] m, long rows, long cols)
    {
        var t = new float[m.Length];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
        return t;
    }
}

/// <summary>
/// The two CLIP towers as ONNX graphs, computed as ClipSharp's TorchSharp forward (src/ClipSharp.Torch/Modeling) computes
/// them, from the weights of a loaded <see cref="ClipModel"/>: LayerNormalization (eps 1e-5), pre-LN residual blocks,
/// attention as two batched products around a softmax (the text tower's causal mask a constant), QuickGELU as
/// x·σ(1.702x) and exact GELU through Erf (opset 17 has no Gelu), the modified ResNet's convolutions with their
/// BatchNorms folded in (in float32, as <c>ConvBn</c> does) and its attention pool, and the text pooling at
/// argmax(input_ids) through GatherND with one batch dimension, exact for any batch.
/// </summary>
internal sealed class ClipOnnxGraphs(ClipModel model)
{
    readonly ClipConfig config = model.Config;
    readonly ModelWeights w = new(model);

    /// <summary>The name of the dynamic batch dimension.</summary>
    public const string BatchDim = "batch";

    // ---- shared pieces ----

    static string LayerNorm(OnnxGraph g, ModelWeights w, string x, string prefix) =>
        g.Node("LayerNormalization", [x, g.Weight(prefix + ".weight", w.Data(prefix + ".weight"), w.Shape(prefix + ".weight")), g.Weight(prefix + ".bias", w.Data(prefix + ".bias"), w.Shape(prefix + ".bias"))],
            OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", 1e-5f));

    /// <summary>x·Wᵀ + b for a torch Linear stored as weight [out, in] (and bias [out]).</summary>
    static string Linear(OnnxGraph g, string x, string name, float[] weight, long outF, long inF, float[]? bias)
    {
        var y = g.Node("MatMul", [x, g.Weight(name + ".weight.T", ModelWeights.Transpose(weight, outF, inF), inF, outF)]);
        return bias is null ? y : g.Node("Add", [y, g.Weight(name + ".bias", bias, outF)]);
    }

    string Linear(OnnxGraph g, string x, string prefix)
    {
        var shape = w.Shape(prefix + ".weight");
        return Linear(g, x, prefix, w.Data(prefix + ".weight"), shape[0], shape[1], w.Has(prefix + ".bias") ? w.Data(prefix + ".bias") : null);
    }

    /// <summary>[N, L, D] → [N, H, L, D/H].</summary>
    static string SplitHeads(OnnxGraph g, string x, long heads, long headDim) =>
        g.Node("Transpose", [g.Node("Reshape", [x, g.Int64s("heads_shape", [0, 0, heads, headDim])])], OnnxAttribute.Ints("perm", 0, 2, 1, 3));

    /// <summary>softmax(q·kᵀ/√d [+ mask])·v over [N, H, L, d] and back to [N, Lq, H·d].</summary>
    static string Attend(OnnxGraph g, string q, string k, string v, long headDim, string? mask, long width)
    {
        var kt = g.Node("Transpose", [k], OnnxAttribute.Ints("perm", 0, 1, 3, 2));
        var scores = g.Node("Mul", [g.Node("MatMul", [q, kt]), g.Scalar("attn_scale", (float)(1.0 / Math.Sqrt(headDim)))]);
        if (mask is not null) scores = g.Node("Add", [scores, mask]);
        var weights = g.Node("Softmax", [scores], OnnxAttribute.Int("axis", -1));
        var o = g.Node("Transpose", [g.Node("MatMul", [weights, v])], OnnxAttribute.Ints("perm", 0, 2, 1, 3));
        return g.Node("Reshape", [o, g.Int64s("merge_shape", [0, 0, width])]);
    }

    string Block(OnnxGraph g, string x, string prefix, long width, long heads, string? mask)
    {
        long hd = width / heads;
        var h = LayerNorm(g, w, x, prefix + ".ln_1");
        var inW = w.Data(prefix + ".attn.in_proj_weight");
        var inB = w.Data(prefix + ".attn.in_proj_bias");
        var qkv = Linear(g, h, prefix + ".attn.in_proj", inW, 3 * width, width, inB);
        var parts = g.Node("Split", [qkv], 3, OnnxAttribute.Int("axis", -1));
        var a = Attend(g, SplitHeads(g, parts[0], heads, hd), SplitHeads(g, parts[1], heads, hd), SplitHeads(g, parts[2], heads, hd), hd, mask, width);
        a = Linear(g, a, prefix + ".attn.out_proj");
        x = g.Node("Add", [x, a]);
        h = LayerNorm(g, w, x, prefix + ".ln_2");
        h = Linear(g, h, prefix + ".mlp.c_fc");
        h = config.Activation == MlpActivation.QuickGelu
            ? g.Node("Mul", [h, g.Node("Sigmoid", [g.Node("Mul", [h, g.Scalar("quick_gelu", QuickGelu.Coefficient)])])])
            : g.Node("Mul", [g.Node("Mul", [h, g.Scalar("half", 0.5f)]),
                g.Node("Add", [g.Scalar("one", 1f), g.Node("Erf", [g.Node("Mul", [h, g.Scalar("inv_sqrt2", (float)(1 / Math.Sqrt(2)))])])])]);
        h = Linear(g, h, prefix + ".mlp.c_proj");
        return g.Node("Add", [x, h]);
    }

    string Transformer(OnnxGraph g, string x, string prefix, int layers, long width, long heads, string? mask)
    {
        for (int i = 0; i < layers; i++) x = Block(g, x, $"{prefix}.resblocks.{i}", width, heads, mask);
        return x;
    }

    // ---- text tower ----

    /// <summary><c>input_ids</c> int64 [batch, context] → <c>text_embeds</c> float32 [batch, embed_dim].</summary>
    public OnnxGraph Text()
    {
        var g = new OnnxGraph("clip_text");
        long ctx = config.ContextLength, width = config.TransformerWidth;
        var ids = g.Input("input_ids", DataType.Int64, BatchDim, ctx);
        var x = g.Node("Gather", [g.Weight("token_embedding.weight", w.Data("token_embedding.weight"), w.Shape("token_embedding.weight")), ids], OnnxAttribute.Int("axis", 0));
        x = g.Node("Add", [x, g.Weight("positional_embedding", w.Data("positional_embedding"), w.Shape("positional_embedding"))]);
        var mask = new float[ctx * ctx];
        for (long r = 0; r < ctx; r++)
            for (long c = r + 1; c < ctx; c++) mask[r * ctx + c] = float.NegativeInfinity;
        var causal = g.Weight("causal_mask", mask, ctx, ctx);
        x = Transformer(g, x, "transformer", config.TransformerLayers, width, config.TransformerHeads, causal);
        // Pooling at the first maximum of each row (the end-of-text token, or the first literal one), as torch's argmax.
        var eot = g.Node("ArgMax", [ids], OnnxAttribute.Int("axis", 1), OnnxAttribute.Int("keepdims", 1), OnnxAttribute.Int("select_last_index", 0));
        var pooled = g.Node("GatherND", [x, eot], OnnxAttribute.Int("batch_dims", 1)); // [N, D]
        // ln_final works on each position alone, so normalising only the pooled rows gives the reference's values.
        pooled = LayerNorm(g, w, pooled, "ln_final");
        var y = g.Node("MatMul", [pooled, g.Weight("text_projection", w.Data("text_projection"), w.Shape("text_projection"))]);
        g.Output(y, "text_embeds", DataType.Float, BatchDim, config.EmbedDim);
        return g;
    }

    // ---- image towers ----

    /// <summary><c>pixel_values</c> float32 [batch, 3, R, R] → <c>image_embeds</c> float32 [batch, embed_dim].</summary>
    public OnnxGraph Vision()
    {
        var g = new OnnxGraph("clip_vision");
        long r = config.ImageResolution;
        var pixels = g.Input("pixel_values", DataType.Float, BatchDim, 3, r, r);
        var y = config.IsVit ? VisionTransformer(g, pixels) : ModifiedResNet(g, pixels);
        g.Output(y, "image_embeds", DataType.Float, BatchDim, config.EmbedDim);
        return g;
    }

    string VisionTransformer(OnnxGraph g, string pixels)
    {
        long p = config.VisionPatchSize!.Value, width = config.VisionWidth;
        // Kernel = stride = patch, no padding: the convolution floors, as the reference's does.
        var conv = g.Node("Conv", [pixels, g.Weight("visual.conv1.weight", w.Data("visual.conv1.weight"), w.Shape("visual.conv1.weight"))],
            OnnxAttribute.Ints("kernel_shape", p, p), OnnxAttribute.Ints("strides", p, p));
        var x = g.Node("Transpose", [g.Node("Reshape", [conv, g.Int64s("flat", [0, 0, -1])])], OnnxAttribute.Ints("perm", 0, 2, 1)); // [N, g², W]
        // The class token, repeated over the batch: Expand to [N, 1, W] with N read from the input's shape.
        var batch = g.Node("Slice", [g.Node("Shape", [pixels]), g.Int64s("zero", [0]), g.Int64s("one", [1])]);
        var clsShape = g.Node("Concat", [batch, g.Int64s("cls_tail", [1, width])], OnnxAttribute.Int("axis", 0));
        var cls = g.Node("Expand", [g.Weight("visual.class_embedding", w.Data("visual.class_embedding"), 1, 1, width), clsShape]);
        x = g.Node("Concat", [cls, x], OnnxAttribute.Int("axis", 1));
        x = g.Node("Add", [x, g.Weight("visual.positional_embedding", w.Data("visual.positional_embedding"), w.Shape("visual.positional_embedding"))]);
        x = LayerNorm(g, w, x, "visual.ln_pre");
        x = Transformer(g, x, "visual.transformer", config.VisionLayers[0], width, config.EffectiveVisionHeads, null);
        var pooled = g.Node("Gather", [x, g.Int64s("class_index", [0], scalar: true)], OnnxAttribute.Int("axis", 1)); // [N, W]
        pooled = LayerNorm(g, w, pooled, "visual.ln_post");
        return g.Node("MatMul", [pooled, g.Weight("visual.proj", w.Data("visual.proj"), w.Shape("visual.proj"))]);
    }

    /// <summary>A convolution with its BatchNorm's running statistics folded in: w·γ/√(σ²+ε), β − μ·γ/√(σ²+ε) in float32.</summary>
    string ConvBn(OnnxGraph g, string x, string conv, string bn, long stride, long padding)
    {
        var weight = w.Data(conv + ".weight");
        var shape = w.Shape(conv + ".weight");
        var gamma = w.Data(bn + ".weight");
        var beta = w.Data(bn + ".bias");
        var mean = w.Data(bn + ".running_mean");
        var variance = w.Data(bn + ".running_var");
        long o = shape[0], per = weight.Length / o;
        var fw = new float[weight.Length];
        var fb = new float[o];
        for (long c = 0; c < o; c++)
        {
            float scale = gamma[c] / MathF.Sqrt(variance[c] + 1e-5f);
            for (long i = 0; i < per; i++) fw[c * per + i] = weight[c * per + i] * scale;
            fb[c] = beta[c] - mean[c] * scale;
        }
        long k = shape[2];
        return g.Node("Conv", [x, g.Weight(conv + ".weight.folded", fw, shape), g.Weight(conv + ".bias.folded", fb, o)],
            OnnxAttribute.Ints("kernel_shape", k, k), OnnxAttribute.Ints("strides", stride, stride), OnnxAttribute.Ints("pads", padding, padding, padding, padding));
    }

    static string Relu(OnnxGraph g, string x) => g.Node("Relu", [x]);

    static string AvgPool(OnnxGraph g, string x, long k) =>
        g.Node("AveragePool", [x], OnnxAttribute.Ints("kernel_shape", k, k), OnnxAttribute.Ints("strides", k, k));

    string ModifiedResNet(OnnxGraph g, string pixels)
    {
        var x = Relu(g, ConvBn(g, pixels, "visual.conv1", "visual.bn1", 2, 1));
        x = Relu(g, ConvBn(g, x, "visual.conv2", "visual.bn2", 1, 1));
        x = Relu(g, ConvBn(g, x, "visual.conv3", "visual.bn3", 1, 1));
        x = AvgPool(g, x, 2);
        for (int layer = 1; layer <= 4; layer++)
        {
            for (int b = 0; b < config.VisionLayers[layer - 1]; b++)
            {
                string p = $"visual.layer{layer}.{b}";
                long stride = layer > 1 && b == 0 ? 2 : 1;
                var o = Relu(g, ConvBn(g, x, p + ".conv1", p + ".bn1", 1, 0));
                o = Relu(g, ConvBn(g, o, p + ".conv2", p + ".bn2", 1, 1));
                if (stride > 1) o = AvgPool(g, o, stride);
                o = ConvBn(g, o, p + ".conv3", p + ".bn3", 1, 0);
                var identity = x;
                if (w.Has(p + ".downsample.0.weight"))
                    identity = ConvBn(g, stride > 1 ? AvgPool(g, x, stride) : x, p + ".downsample.0", p + ".downsample.1", 1, 0);
                x = Relu(g, g.Node("Add", [o, identity]));
            }
        }
        return AttentionPool(g, x);
    }

    string AttentionPool(OnnxGraph g, string x)
    {
        long c = config.VisionWidth * 32, heads = config.EffectiveVisionHeads, hd = c / heads;
        var tokens = g.Node("Transpose", [g.Node("Reshape", [x, g.Int64s("flat", [0, 0, -1])])], OnnxAttribute.Ints("perm", 0, 2, 1)); // [N, HW, C]
        var mean = g.Node("ReduceMean", [tokens], OnnxAttribute.Ints("axes", 1), OnnxAttribute.Int("keepdims", 1));
        tokens = g.Node("Concat", [mean, tokens], OnnxAttribute.Int("axis", 1));
        tokens = g.Node("Add", [tokens, g.Weight("visual.attnpool.positional_embedding", w.Data("visual.attnpool.positional_embedding"), w.Shape("visual.attnpool.positional_embedding"))]);
        var first = g.Node("Slice", [tokens, g.Int64s("zero", [0]), g.Int64s("one", [1]), g.Int64s("axis1", [1])]); // [N, 1, C]
        var q = SplitHeads(g, Linear(g, first, "visual.attnpool.q_proj"), heads, hd);
        var k = SplitHeads(g, Linear(g, tokens, "visual.attnpool.k_proj"), heads, hd);
        var v = SplitHeads(g, Linear(g, tokens, "visual.attnpool.v_proj"), heads, hd);
        var o = Attend(g, q, k, v, hd, null, c);                                          // [N, 1, C]
        o = g.Node("Reshape", [o, g.Int64s("rows", [0, c])]);
        return Linear(g, o, "visual.attnpool.c_proj");
    }
}
