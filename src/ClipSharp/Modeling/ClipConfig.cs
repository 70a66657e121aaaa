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

    /// <summary>Value equality including the array of layer counts.</summary>
    public bool Equals(ClipConfig? other) =>
        other is not null && EmbedDim == other.EmbedDim && ImageResolution == other.ImageResolution &&
        VisionLayers.AsSpan().SequenceEqual(other.VisionLayers) && VisionWidth == other.VisionWidth &&
        VisionPatchSize == other.VisionPatchSize && ContextLength == other.ContextLength &&
        VocabSize == other.VocabSize && TransformerWidth == other.TransformerWidth &&
        TransformerHeads == other.TransformerHeads && TransformerLayers == other.TransformerLayers &&
        VisionHeadsOverride == other.VisionHeadsOverride;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(EmbedDim, ImageResolution, VisionWidth, VisionPatchSize, TransformerWidth, TransformerLayers, VisionLayers.Length);

    /// <inheritdoc />
    public override string ToString() =>
        $"ClipConfig(embed_dim={EmbedDim}, image_resolution={ImageResolution}, vision_layers=[{string.Join(",", VisionLayers)}], " +
        $"vision_width={VisionWidth}, vision_patch_size={(VisionPatchSize?.ToString() ?? "null")}, context_length={ContextLength}, " +
        $"vocab_size={VocabSize}, transformer_width={TransformerWidth}, transformer_heads={TransformerHeads}, transformer_layers={TransformerLayers})";

    /// <summary>Reads the constructor arguments from a JSON object (reference names, e.g. the golden *.config.json files,
    /// or a "hyperparameters" object inside it). Unknown fields are ignored.</summary>
    public static ClipConfig FromJson(string json, string source = "config")
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})", e); }
        if (root is not JsonObject obj) throw new InvalidDataException($"{source}: expected a JSON object");
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
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Checks that the sizes are consistent; throws <see cref="InvalidDataException"/> naming the source otherwise.</summary>
    public void Validate(string source = "config")
    {
        void Check(bool ok, string what) { if (!ok) throw new InvalidDataException($"{source}: {what}"); }
        Check(EmbedDim > 0 && ImageResolution > 0 && VisionWidth > 0 && ContextLength > 0 && VocabSize > 0, "sizes must be positive");
        Check(TransformerHeads > 0 && TransformerWidth % TransformerHeads == 0, $"transformer_width {TransformerWidth} is not divisible by transformer_heads {TransformerHeads}");
        if (IsVit)
        {
            Check(VisionLayers.Length == 1, "a ViT has a single vision_layers count");
            Check(ImageResolution % VisionPatchSize!.Value == 0, $"image_resolution {ImageResolution} is not a multiple of vision_patch_size {VisionPatchSize}");
            Check(EffectiveVisionHeads > 0 && VisionWidth % EffectiveVisionHeads == 0, $"vision_width {VisionWidth} does not split into {EffectiveVisionHeads} heads (set vision_heads)");
        }
        else
        {
            Check(VisionLayers.Length == 4, "a ResNet needs four vision_layers counts");
            Check(ImageResolution % 32 == 0, $"ResNet image_resolution {ImageResolution} must be a multiple of 32");
            Check(EffectiveVisionHeads > 0 && VisionWidth * 32 % EffectiveVisionHeads == 0, "ResNet attention-pool width does not split into heads");
        }
    }
}
