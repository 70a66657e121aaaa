using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

#pragma warning disable IDE1006 // snake_case fields are the state_dict keys

/// <summary>
/// CLIP: an image tower and a causal text transformer projected into one embedding space, with a learnable
/// temperature stored as <c>logit_scale</c> = ln(scale). Parameter names equal the reference state_dict keys.
/// </summary>
public sealed partial class ClipModel : nn.Module<Tensor, Tensor, (Tensor LogitsPerImage, Tensor LogitsPerText)>
{
    private readonly Parameter positional_embedding;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;
    private readonly ImageTower visual;
    private readonly Transformer transformer;
    private readonly Embedding token_embedding;
    private readonly ClipLayerNorm ln_final;

    /// <summary>Builds a model with the reference random initialisation (float32, CPU).</summary>
    public ClipModel(ClipConfig config) : this(config, initialize: true) { }

    /// <summary>Builds a model; with <paramref name="initialize"/> false the reference initialisation is skipped
    /// (for models whose weights are loaded right after).</summary>
    public ClipModel(ClipConfig config, bool initialize) : base("CLIP")
    {
        config.Validate();
        Config = config;
        visual = config.IsVit
            ? new VisionTransformer(config.ImageResolution, config.VisionPatchSize!.Value, config.VisionWidth,
                config.VisionLayers[0], config.EffectiveVisionHeads, config.EmbedDim, config.VisionMlpWidth, config.Activation)
            : new ModifiedResNet(config.VisionLayers, config.EmbedDim, config.EffectiveVisionHeads,
                config.ImageResolution, config.VisionWidth);
        transformer = new Transformer(config.TransformerWidth, config.TransformerLayers, config.TransformerHeads, causal: true,
            config.TextMlpWidth, config.Activation);
        token_embedding = nn.Embedding(config.VocabSize, config.TransformerWidth);
        positional_embedding = nn.Parameter(torch.empty(config.ContextLength, config.TransformerWidth));
        ln_final = new ClipLayerNorm(config.TransformerWidth);
        text_projection = nn.Parameter(torch.empty(config.TransformerWidth, config.EmbedDim));
        logit_scale = nn.Parameter(torch.tensor(MathF.Log(1 / 0.07f)));
        RegisterComponents();
        if (initialize) InitializeParameters();
        transformer.BlockProbe = (i, t) => Probe?.Invoke($"transformer.resblocks.{i}.out", t);
    }

    /// <summary>The hyperparameters this model was built with.</summary>
    public ClipConfig Config { get; }

    /// <summary>The image tower (ViT or modified ResNet).</summary>
    public ImageTower Visual => visual;

    /// <summary>The text transformer.</summary>
    public Transformer TextTransformer => transformer;

    /// <summary>
    /// The dtype of the matmul-heavy weights: float32, or bfloat16 after <see cref="UseBFloat16Weights"/>.
    /// LayerNorm statistics, BatchNorm, logit_scale and the returned features stay float32.
    /// </summary>
    public ScalarType ComputeType { get; private set; } = ScalarType.Float32;

    /// <summary>
    /// Mixed precision for inference: converts the weights of every linear layer, convolution, attention
    /// projection and the token embedding to bfloat16 so the matrix products run in bf16, while LayerNorm
    /// (computed in float32), BatchNorm, logit_scale and the outputs stay float32. TorchSharp has no autocast;
    /// this is its explicit equivalent. Irreversible for this instance (reload to get float32 back).
    /// </summary>
    public ClipModel UseBFloat16Weights()
    {
        foreach (var (_, module) in named_modules())
        {
            if (module is Linear or Conv2d or Embedding) module.to(ScalarType.BFloat16);
            else if (module is SelfAttention attn) attn.to(ScalarType.BFloat16);
        }
        ComputeType = ScalarType.BFloat16;
        visual.InvalidateCaches();
        return this;
    }

    /// <summary>ln(temperature scale); logits use exp(LogitScale).</summary>
    public Parameter LogitScale => logit_scale;

    /// <summary>
    /// Receives named intermediates (batch-first), e.g. "visual.ln_pre.out", "text.embed.out",
    /// "transformer.resblocks.0.out", "ln_final.out". For debugging ports; null (off) by default.
    /// </summary>
    public Action<string, Tensor>? Probe
    {
        get => probe;
        set { probe = value; visual.Probe = value; }
    }
    private Action<string, Tensor>? probe;

    private void InitializeParameters()
    {
        using var _ = torch.no_grad();
        nn.init.normal_(token_embedding.weight!, std: 0.02);
        nn.init.normal_(positional_embedding, std: 0.01);
        if (visual is ModifiedResNet rn)
        {
            double std = Math.Pow(rn.AttnPool.Projections.Last().weight!.shape[1], -0.5);
            foreach (var lin in rn.AttnPool.Projections) nn.init.normal_(lin.weight!, std: std);
            foreach (var bn in rn.ResidualBranchNorms) nn.init.zeros_(bn.weight!);
        }
        double width = Config.TransformerWidth;
        double projStd = Math.Pow(width, -0.5) * Math.Pow(2 * Config.TransformerLayers, -0.5);
        double attnStd = Math.Pow(width, -0.5);
        double fcStd = Math.Pow(2 * width, -0.5);
        foreach (var block in transformer.Blocks)
        {
            nn.init.normal_(block.Attention.InProjWeight, std: attnStd);
            nn.init.normal_(block.Attention.OutProj.weight!, std: projStd);
            nn.init.normal_(block.Mlp.CFc.weight!, std: fcStd);
            nn.init.normal_(block.Mlp.CProj.weight!, std: projStd);
        }
        nn.init.normal_(text_projection, std: attnStd);
    }

    /// <summary>Image features [N, embed_dim] (not normalised) from preprocessed pixels [N, 3, R, R].</summary>
    public Tensor EncodeImage(Tensor pixels)
    {
        if (pixels.dim() != 4 || pixels.shape[1] != 3)
            throw new ArgumentException($"pixel values must be [N, 3, {visual.InputResolution}, {visual.InputResolution}], got [{string.Join(", ", pixels.shape)}]");
        using var scope = NewDisposeScope();
        var features = visual.forward(pixels.to(ComputeType));
        return features.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Text features [N, embed_dim] (not normalised) from token ids [N, context_length], taken at the
    /// end-of-text token (the argmax of each row, as the reference does).</summary>
    /// <param name="inputIds">Token ids [N, ≤ context_length].</param>
    /// <param name="skipPadding">Skip the padding after each text's end-of-text token. The tower is causal and pools
    /// at that token, so later positions cannot change the result: the batch is split into groups of similar length
    /// (<see cref="TextLengthBuckets"/>) and each group runs only up to its longest text, which for captions of mixed
    /// length saves a third or more of the work, and for short prompts padded to 77 tokens most of it. Off when a
    /// <see cref="Probe"/> wants every position.</param>
    public Tensor EncodeText(Tensor inputIds, bool skipPadding = true)
    {
        if (inputIds.dim() != 2 || inputIds.shape[1] > Config.ContextLength)
            throw new ArgumentException($"input ids must be [N, ≤{Config.ContextLength}], got [{string.Join(", ", inputIds.shape)}]");
        using var scope = NewDisposeScope();
        var ids = inputIds.to(ScalarType.Int64);
        if (!skipPadding || Probe is not null || ids.shape[0] == 0) return EncodeTokens(ids).MoveToOuterDisposeScope();

        long[] lengths;
        using (torch.no_grad())
        using (var eot = ids.argmax(-1))
            lengths = eot.data<long>().ToArray();
        for (int i = 0; i < lengths.Length; i++) lengths[i]++;
        var buckets = TextLengthBuckets.Plan(lengths, Config.TransformerWidth);
        if (buckets.Count == 1)
        {
            long used = buckets[0].Length;
            return EncodeTokens(used < ids.shape[1] ? ids.narrow(1, 0, used) : ids).MoveToOuterDisposeScope();
        }
        // Encode each group up to its own longest text, then put the rows back in input order.
        var parts = new List<Tensor>(buckets.Count);
        var order = new long[lengths.Length];
        int at = 0;
        foreach (var b in buckets)
        {
            var rows = torch.tensor(b.Rows);
            parts.Add(EncodeTokens(ids.index_select(0, rows).narrow(1, 0, b.Length)));
            foreach (var r in b.Rows) order[r] = at++;
        }
        var result = torch.cat(parts, 0).index_select(0, torch.tensor(order));
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Embedding, transformer, final LayerNorm, pooling at the argmax token and projection, for ids as given.</summary>
    private Tensor EncodeTokens(Tensor ids)
    {
        long len = ids.shape[1];
        var x = token_embedding.forward(ids).add(positional_embedding.narrow(0, 0, len).to(ComputeType), TorchScalars.One);
        Probe?.Invoke("text.embed.out", x);
        x = transformer.forward(x);
        x = ln_final.forward(x);
        Probe?.Invoke("ln_final.out", x);
        var eot = ids.argmax(-1);
        Probe?.Invoke("text.eot_index", eot);
        var pooled = x[TorchScalars.Arange(x.shape[0]), eot];
        return pooled.matmul(text_projection.to(ComputeType)).to(ScalarType.Float32);
    }

    /// <summary>Scaled cosine similarities: exp(logit_scale) · normalised images · normalised textsᵀ.</summary>
    public (Tensor LogitsPerImage, Tensor LogitsPerText) Logits(Tensor imageFeatures, Tensor textFeatures)
    {
        using var scope = NewDisposeScope();
        var img = imageFeatures.to(ScalarType.Float32);
        var txt = textFeatures.to(ScalarType.Float32);
        img = img / img.norm(1, keepdim: true);
        txt = txt / txt.norm(1, keepdim: true);
        var perImage = logit_scale.to(ScalarType.Float32).exp() * img.matmul(txt.t());
        var perText = perImage.t();
        return (perImage.MoveToOuterDisposeScope(), perText.MoveToOuterDisposeScope());
    }

    /// <summary>The reference forward: encode both sides and return (logits_per_image, logits_per_text).</summary>
    public override (Tensor LogitsPerImage, Tensor LogitsPerText) forward(Tensor pixels, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var (a, b) = Logits(EncodeImage(pixels), EncodeText(inputIds));
        return (a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope());
    }

    /// <summary>Keys a released OpenAI checkpoint carries besides the weights; the reference build_model drops them.</summary>
    public static readonly IReadOnlySet<string> ExtraReleasedKeys = new HashSet<string> { "input_resolution", "context_length", "vocab_size" };

    /// <summary>
    /// Copies weights into this model. Strict: every parameter and buffer must be present with the same shape,
    /// and no unknown key may remain (besides the released checkpoints' three scalar extras). Tensors are
    /// converted to this model's dtype (float16 weights are upcast).
    /// </summary>
    /// <param name="weights">Name → tensor in the OpenAI layout.</param>
    /// <param name="source">File name for error messages.</param>
    public void LoadWeights(IEnumerable<KeyValuePair<string, Tensor>> weights, string source = "checkpoint")
    {
        var mine = state_dict();
        var seen = new HashSet<string>();
        var unexpected = new List<string>();
        var wrongShape = new List<string>();
        var pending = new List<(Tensor dst, Tensor src)>();
        foreach (var (key, value) in weights)
        {
            if (ExtraReleasedKeys.Contains(key)) continue;
            if (!mine.TryGetValue(key, out var dst)) { unexpected.Add(key); continue; }
            seen.Add(key);
            if (!dst.shape.SequenceEqual(value.shape))
                wrongShape.Add($"{key}: checkpoint [{string.Join(",", value.shape)}] vs model [{string.Join(",", dst.shape)}]");
            else pending.Add((dst, value));
        }
        var missing = mine.Keys.Where(k => !seen.Contains(k)).ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count > 0)
        {
            // One line: the first difference and how many more (the full lists ran to ~1,500 characters).
            var first = wrongShape.Concat(missing.Select(k => $"{k} is missing"))
                .Concat(unexpected.Select(k => $"{k} is unexpected")).First();
            int more = missing.Count + unexpected.Count + wrongShape.Count - 1;
            throw new ClipSharpException($"{source}: weights do not fit {(Config.IsVit ? "the ViT" : "the ModifiedResNet")} architecture: {first}" +
                (more > 0 ? $" ({more} more differences)" : ""));
        }
        using var _ = torch.no_grad();
        foreach (var (dst, src) in pending) dst.copy_(src);
        visual.InvalidateCaches();
    }
}
