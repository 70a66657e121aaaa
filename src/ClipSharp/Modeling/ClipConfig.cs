using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClipSharp.Modeling;

/// <summary>
/// Hyperparameters of a CLIP model, named after the reference <c>CLIP</c> constructor arguments.
/// A ViT image tower has <see cref="VisionPatchSize"/> set and a single layer count; the modified
/// ResNet has no patch size and four stage depths in <see cref="VisionLayers"/>.
/// </summary>
/// <param name="EmbedDim">Size of the joint embedding space.</param>
/// <param name="ImageResolution">Input image side in pixels.</param>
/// <param name="VisionLayers">ViT: one entry (transformer depth). ResNet: four stage depths.</param>
/// <param name="VisionWidth">ViT width, or the ResNet base width (stem is half of it).</param>
/// <param name="VisionPatchSize">ViT patch size; null for the ResNet.</param>
/// <param name="ContextLength">Text context length (77 for every released model).</param>
/// <param name="VocabSize">Token vocabulary size (49408).</param>
/// <param name="TransformerWidth">Text transformer width.</param>
/// <param name="TransformerHeads">Text transformer heads.</param>
/// <param name="TransformerLayers">Text transformer depth.</param>
/// <remarks>
/// The OpenAI models all use QuickGELU and 4×-wide MLPs with 64-wide attention heads. Models trained with OpenCLIP
/// differ in ways the weights do not show: most use exact GELU (<see cref="Activation"/>), some have wider heads
/// (ViT-H/14: 80, <see cref="VisionHeadsOverride"/>) or other MLP ratios (ViT-g/14, ViT-bigG/14,
/// <see cref="VisionMlpWidthOverride"/>). Those come from the model's config (an OpenCLIP model config, a Hugging Face
/// config.json or this type's JSON); inference from tensor shapes recovers the MLP widths but not the rest.
/// </remarks>
public sealed record ClipConfig(
    int EmbedDim,
    int ImageResolution,
    int[] VisionLayers,
    int VisionWidth,
    int? VisionPatchSize,
    int ContextLength,
    int VocabSize,
    int TransformerWidth,
    int TransformerHeads,
    int TransformerLayers)
{
    /// <summary>True when the image tower is a Vision Transformer, false for the modified ResNet.</summary>
    public bool IsVit => VisionPatchSize is not null;

    /// <summary>Image tower heads as the reference CLIP class derives them: width/64 (ViT) or width*32/64 (ResNet).</summary>
    public int VisionHeads => IsVit ? VisionWidth / 64 : VisionWidth * 32 / 64;

    /// <summary>Explicit override of <see cref="VisionHeads"/> (null: derive as the reference does).</summary>
    public int? VisionHeadsOverride { get; init; }

    /// <summary>Heads actually used by the image tower.</summary>
    public int EffectiveVisionHeads => VisionHeadsOverride ?? VisionHeads;

    /// <summary>The activation inside every transformer MLP, in both towers (QuickGELU for the OpenAI models).</summary>
    public MlpActivation Activation { get; init; } = MlpActivation.QuickGelu;

    /// <summary>Hidden width of the ViT's MLPs when it is not 4 × <see cref="VisionWidth"/> (null: 4×).</summary>
    public int? VisionMlpWidthOverride { get; init; }

    /// <summary>Hidden width of the text transformer's MLPs when it is not 4 × <see cref="TransformerWidth"/> (null: 4×).</summary>
    public int? TextMlpWidthOverride { get; init; }

    /// <summary>Hidden width of the ViT's MLPs (c_fc output).</summary>
    public int VisionMlpWidth => VisionMlpWidthOverride ?? 4 * VisionWidth;

    /// <summary>Hidden width of the text transformer's MLPs (c_fc output).</summary>
    public int TextMlpWidth => TextMlpWidthOverride ?? 4 * TransformerWidth;

    /// <summary>Value equality including the array of layer counts.</summary>
    public bool Equals(ClipConfig? other) =>
        other is not null && EmbedDim == other.EmbedDim && ImageResolution == other.ImageResolution &&
        VisionLayers.AsSpan().SequenceEqual(other.VisionLayers) && VisionWidth == other.VisionWidth &&
        VisionPatchSize == other.VisionPatchSize && ContextLength == other.ContextLength &&
        VocabSize == other.VocabSize && TransformerWidth == other.TransformerWidth &&
        TransformerHeads == other.TransformerHeads && TransformerLayers == other.TransformerLayers &&
        EffectiveVisionHeads == other.EffectiveVisionHeads && Activation == other.Activation &&
        (!IsVit || VisionMlpWidth == other.VisionMlpWidth) && TextMlpWidth == other.TextMlpWidth;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(EmbedDim, ImageResolution, VisionWidth, VisionPatchSize, TransformerWidth, TransformerLayers, VisionLayers.Length);

    /// <inheritdoc />
    public override string ToString() =>
        $"ClipConfig(embed_dim={EmbedDim}, image_resolution={ImageResolution}, vision_layers=[{string.Join(",", VisionLayers)}], " +
        $"vision_width={VisionWidth}, vision_patch_size={(VisionPatchSize?.ToString() ?? "null")}, context_length={ContextLength}, " +
        $"vocab_size={VocabSize}, transformer_width={TransformerWidth}, transformer_heads={TransformerHeads}, transformer_layers={TransformerLayers}" +
        (VisionHeadsOverride is int h ? $", vision_heads={h}" : "") +
        (Activation != MlpActivation.QuickGelu ? $", activation={ActivationName(Activation)}" : "") +
        (VisionMlpWidthOverride is int vm ? $", vision_mlp_width={vm}" : "") +
        (TextMlpWidthOverride is int tm ? $", transformer_mlp_width={tm}" : "") + ")";

    /// <summary>The JSON name of an activation: <c>quick_gelu</c> or <c>gelu</c> (the names Hugging Face uses).</summary>
    public static string ActivationName(MlpActivation activation) => activation switch
    {
        MlpActivation.QuickGelu => "quick_gelu",
        MlpActivation.Gelu => "gelu",
        _ => throw new ArgumentOutOfRangeException(nameof(activation)),
    };

    /// <summary>Parses <see cref="ActivationName"/>; throws naming <paramref name="source"/> for any other name.</summary>
    public static MlpActivation ParseActivation(string name, string source) => name switch
    {
        "quick_gelu" => MlpActivation.QuickGelu,
        "gelu" => MlpActivation.Gelu,
        _ => throw new InvalidDataException(
            $"{source}: activation '{name}' is not supported; ClipSharp's transformer MLPs implement 'quick_gelu' (x·σ(1.702x), the OpenAI models) and 'gelu' (exact, erf-based, most OpenCLIP models)"),
    };

    /// <summary>
    /// Reads the constructor arguments from a JSON object: the reference names (e.g. the golden *.config.json files,
    /// or a "hyperparameters" object inside it) plus ClipSharp's optional <c>vision_heads</c>, <c>activation</c>
    /// (<c>quick_gelu</c> or <c>gelu</c>; OpenCLIP's boolean <c>quick_gelu</c> is read too), <c>vision_mlp_width</c> and
    /// <c>transformer_mlp_width</c>. An OpenCLIP model config (<c>vision_cfg</c>/<c>text_cfg</c>, bare or inside the
    /// <c>model_cfg</c> of an <c>open_clip_config.json</c>) is recognised and read by <see cref="Checkpoints.OpenClipConfig"/>.
    /// Unknown fields are ignored.
    /// </summary>
    public static ClipConfig FromJson(string json, string source = "config")
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})", e); }
        if (root is not JsonObject obj) throw new InvalidDataException($"{source}: expected a JSON object");
        if (Checkpoints.OpenClipConfig.IsOpenClip(obj)) return Checkpoints.OpenClipConfig.Read(obj, source);
        if (obj["hyperparameters"] is JsonObject hp) obj = hp;
        int Req(string name) => obj[name] is JsonValue v && v.TryGetValue<int>(out var i)
            ? i : throw new InvalidDataException($"{source}: missing or non-integer field '{name}'");
        int[] layers = obj["vision_layers"] switch
        {
            JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
            JsonValue v when v.TryGetValue<int>(out var n) => [n],
            _ => throw new InvalidDataException($"{source}: missing field 'vision_layers'"),
        };
        int? patch = obj["vision_patch_size"] is JsonValue pv && pv.TryGetValue<int>(out var p) ? p : null;
        var cfg = new ClipConfig(Req("embed_dim"), Req("image_resolution"), layers, Req("vision_width"), patch,
            Req("context_length"), Req("vocab_size"), Req("transformer_width"), Req("transformer_heads"), Req("transformer_layers"));
        if (obj["vision_heads"] is JsonValue vh && vh.TryGetValue<int>(out var heads)) cfg = cfg with { VisionHeadsOverride = heads };
        if (obj["activation"] is JsonNode act)
            cfg = cfg with { Activation = ParseActivation(act is JsonValue av && av.TryGetValue<string>(out var name) ? name : act.ToJsonString(), source) };
        else if (obj["quick_gelu"] is JsonValue qg && qg.TryGetValue<bool>(out var quick))
            cfg = cfg with { Activation = quick ? MlpActivation.QuickGelu : MlpActivation.Gelu };
        int? OptionalInt(string name) => obj[name] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<int>(out var i) => i,
            _ => throw new InvalidDataException($"{source}: field '{name}' is not an integer"),
        };
        cfg = cfg with { VisionMlpWidthOverride = OptionalInt("vision_mlp_width"), TextMlpWidthOverride = OptionalInt("transformer_mlp_width") };
        cfg.Validate(source);
        return cfg;
    }

    /// <summary>Loads <see cref="FromJson"/> from a file.</summary>
    public static ClipConfig FromJsonFile(string path) => FromJson(File.ReadAllText(path), path);

    /// <summary>Writes the constructor arguments with the reference names.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["embed_dim"] = EmbedDim,
            ["image_resolution"] = ImageResolution,
            ["vision_layers"] = IsVit ? JsonValue.Create(VisionLayers[0]) : new JsonArray(VisionLayers.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray()),
            ["vision_width"] = VisionWidth,
            ["vision_patch_size"] = VisionPatchSize,
            ["context_length"] = ContextLength,
            ["vocab_size"] = VocabSize,
            ["transformer_width"] = TransformerWidth,
            ["transformer_heads"] = TransformerHeads,
            ["transformer_layers"] = TransformerLayers,
        };
        if (VisionHeadsOverride is int h) o["vision_heads"] = h;
        if (Activation != MlpActivation.QuickGelu) o["activation"] = ActivationName(Activation);
        if (VisionMlpWidthOverride is int vm) o["vision_mlp_width"] = vm;
        if (TextMlpWidthOverride is int tm) o["transformer_mlp_width"] = tm;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Checks that the sizes make a model the reference constructs and runs; throws <see cref="InvalidDataException"/>
    /// naming the source otherwise.
    /// </summary>
    /// <remarks>
    /// Only the reference's own limits are enforced: each check below names the crash (or silent wrong result) it
    /// prevents. In particular a resolution need not be a multiple of the patch or of 32: the reference's strided
    /// convolutions and average pools floor (the ViT's patch grid is resolution / patch, the right and bottom
    /// remainder unseen), and its position tables have (resolution / patch)² + 1 and (resolution / 32)² + 1 rows.
    /// See <see cref="ResNetGrid"/> for the two ResNet resolutions that do fail.
    /// </remarks>
    public void Validate(string source = "config")
    {
        void Check(bool ok, string what) { if (!ok) throw new InvalidDataException($"{source}: {what}"); }
        // Zero or negative sizes: torch refuses negative dimensions; with a zero image_resolution, vision_width (0 heads),
        // context_length or vocab_size the reference's forward fails (nothing to convolve, split or pool at, no token
        // to look up), and a zero embed_dim gives empty features whose normalisation is 0/0 (NaN logits).
        Check(EmbedDim > 0 && ImageResolution > 0 && VisionWidth > 0 && ContextLength > 0 && VocabSize > 0,
            $"sizes must be positive (embed_dim {EmbedDim}, image_resolution {ImageResolution}, vision_width {VisionWidth}, context_length {ContextLength}, vocab_size {VocabSize})");
        // nn.MultiheadAttention asserts that the width splits into the heads (and divides by their count).
        Check(TransformerHeads > 0 && TransformerWidth % TransformerHeads == 0, $"transformer_width {TransformerWidth} is not divisible by transformer_heads {TransformerHeads}");
        // Not reference arguments (it always uses 4 × width): a zero-width MLP cannot come from a checkpoint (its c_fc
        // would have no rows), so it can only be a mistyped config.
        Check(TextMlpWidth > 0 && (!IsVit || VisionMlpWidth > 0), "MLP widths must be positive");
        Check(Enum.IsDefined(Activation), $"unknown activation {Activation}");
        if (IsVit)
        {
            int patch = VisionPatchSize!.Value;
            Check(VisionLayers.Length == 1, "a ViT has a single vision_layers count");
            // input_resolution // patch_size divides by zero, and a zero-size kernel is refused by conv2d.
            Check(patch > 0, $"vision_patch_size {patch} must be positive");
            // A kernel larger than the image: conv2d fails ("kernel size can't be greater than actual input size").
            Check(ImageResolution >= patch, $"image_resolution {ImageResolution} is smaller than one patch (vision_patch_size {patch}): the patch convolution has no output");
            // nn.MultiheadAttention again (the reference's width // 64 heads is 0 below a width of 64).
            Check(EffectiveVisionHeads > 0 && VisionWidth % EffectiveVisionHeads == 0, $"vision_width {VisionWidth} does not split into {EffectiveVisionHeads} heads (set vision_heads)");
        }
        else
        {
            Check(VisionLayers.Length == 4, "a ResNet needs four vision_layers counts");
            Check(ImageResolution >= 31,
                $"ResNet image_resolution {ImageResolution} is below 31 px: the stride-2 stem and three stride-2 stages leave a map too small for the last 2×2 average pool (torch: 'output size is too small')");
            Check(ImageResolution < 32 || ImageResolution % 32 != 31,
                $"ResNet image_resolution {ImageResolution} leaves a {ResNetGrid(ImageResolution)}×{ResNetGrid(ImageResolution)} grid (the stride-2 stem rounds up) " +
                $"but the attention pool has positions for {ImageResolution / 32}×{ImageResolution / 32} (image_resolution // 32): the reference fails adding them; {ImageResolution - 1} or {ImageResolution + 1} px work");
            // F.multi_head_attention_forward asserts that the pool's width (32 × vision_width) splits into the heads.
            Check(EffectiveVisionHeads > 0 && VisionWidth * 32 % EffectiveVisionHeads == 0, $"ResNet attention-pool width {VisionWidth * 32} does not split into {EffectiveVisionHeads} heads");
        }
    }

    /// <summary>
    /// Side of the feature map the modified ResNet hands its attention pool for an input of <paramref name="resolution"/>
    /// pixels: the stride-2 stem convolution (3×3, padding 1) rounds up, the stem's and the three strided stages' 2×2
    /// average pools round down, so the side is ⌊⌈r/2⌉/16⌋ = ⌊(r+1)/32⌋. The attention pool's positional embedding has
    /// (r // 32)² + 1 rows, which is one grid side short when r % 32 == 31; at r = 31 its single row is broadcast over
    /// both tokens (the reference does so too), from r = 63 on the addition fails.
    /// </summary>
    public static int ResNetGrid(int resolution) => (resolution + 1) / 32;
}

/// <summary>The activation between the two linear layers of a transformer MLP.</summary>
public enum MlpActivation
{
    /// <summary>x · σ(1.702 · x), the OpenAI models' (and OpenCLIP's <c>-quickgelu</c> models').</summary>
    QuickGelu,

    /// <summary>The exact GELU, x · Φ(x) with the erf-based Φ (torch.nn.GELU()), used by most OpenCLIP models.</summary>
    Gelu,
}
