using System.Globalization;
using System.Text.Json.Nodes;

namespace ClipSharp.Hub;

/// <summary>
/// One published set of weights, named like OpenCLIP names it: an architecture and a pretraining tag
/// (<c>ViT-B-32</c> + <c>laion2b_s34b_b79k</c>). The weights live in a Hugging Face hub repository in OpenCLIP's layout
/// (<c>open_clip_config.json</c>, <c>open_clip_model.safetensors</c> or <c>open_clip_pytorch_model.bin</c>); many also
/// have a direct release URL, OpenAI's with the file's SHA-256 in it.
/// </summary>
/// <param name="Architecture">OpenCLIP's architecture name (<c>ViT-B-32</c>, <c>RN50x4</c>, <c>ViT-bigG-14</c>).</param>
/// <param name="Tag">The pretraining tag (<c>openai</c>, <c>laion2b_s34b_b79k</c>, <c>datacomp_xl_s13b_b90k</c>).</param>
/// <param name="HubRepository">The hub repository (<c>org/name</c>) OpenCLIP downloads these weights from.</param>
/// <param name="QuickGelu">The model was trained with QuickGELU (OpenAI's models and a few others) rather than exact GELU.</param>
/// <param name="Url">A direct download of the weights, or null.</param>
/// <param name="UrlSha256">The SHA-256 of <paramref name="Url"/>'s file as published (all 64 digits for OpenAI's, the first 8 for OpenCLIP's releases), or null.</param>
public sealed record PretrainedWeights(string Architecture, string Tag, string HubRepository, bool QuickGelu = false, string? Url = null, string? UrlSha256 = null)
{
    /// <summary>Per-channel normalisation mean the model was trained with; null means CLIP's.</summary>
    public (float R, float G, float B)? Mean { get; init; }

    /// <summary>Per-channel normalisation standard deviation; null means CLIP's.</summary>
    public (float R, float G, float B)? Std { get; init; }

    /// <summary>Anything a user should know about the entry, or null.</summary>
    public string? Note { get; init; }

    /// <summary>The name <see cref="PretrainedResolver"/> and the <c>--model</c> option accept: <c>Architecture:tag</c>.</summary>
    public string Name => $"{Architecture}:{Tag}";

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>
/// The hyperparameters of an OpenCLIP architecture ClipSharp builds, as in OpenCLIP's <c>model_configs/NAME.json</c>
/// (CLIP ViT or modified ResNet image tower, CLIP text transformer).
/// </summary>
internal sealed record PretrainedArchitecture(
    string Name, int EmbedDim, int ImageSize, int[] VisionLayers, int VisionWidth, int? PatchSize,
    int TextWidth, int TextHeads, int TextLayers, int HeadWidth = 64, double MlpRatio = 4.0)
{
    /// <summary>The OpenCLIP <c>model_cfg</c> object, with <c>quick_gelu</c> set as the weights were trained.</summary>
    public JsonObject ModelConfig(bool quickGelu)
    {
        var vision = new JsonObject
        {
            ["image_size"] = ImageSize,
            ["layers"] = PatchSize is null ? new JsonArray(VisionLayers.Select(l => (JsonNode?)JsonValue.Create(l)).ToArray()) : JsonValue.Create(VisionLayers[0]),
            ["width"] = VisionWidth,
            ["patch_size"] = PatchSize is int p ? JsonValue.Create(p) : null,
        };
        if (HeadWidth != 64) vision["head_width"] = HeadWidth;
        if (MlpRatio != 4.0) vision["mlp_ratio"] = MlpRatio;
        var cfg = new JsonObject { ["embed_dim"] = EmbedDim };
        if (quickGelu) cfg["quick_gelu"] = true;
        cfg["vision_cfg"] = vision;
        cfg["text_cfg"] = new JsonObject
        {
            ["context_length"] = 77,
            ["vocab_size"] = 49408,
            ["width"] = TextWidth,
            ["heads"] = TextHeads,
            ["layers"] = TextLayers,
        };
        return cfg;
    }

    /// <summary>A complete <c>open_clip_config.json</c> for these weights: the model config and the preprocessing they were trained with.</summary>
    public string HubConfigJson(PretrainedWeights weights)
    {
        var mean = weights.Mean ?? ClipMean;
        var std = weights.Std ?? ClipStd;
        var root = new JsonObject
        {
            ["model_cfg"] = ModelConfig(weights.QuickGelu),
            ["preprocess_cfg"] = new JsonObject
            {
                ["mean"] = Triple(mean),
                ["std"] = Triple(std),
                ["interpolation"] = "bicubic",
                ["resize_mode"] = "shortest",
            },
        };
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    static JsonArray Triple((float R, float G, float B) v) =>
        new(Exact(v.R), Exact(v.G), Exact(v.B));

    // The shortest decimal that round-trips the float, so the file reads 0.48145466 rather than 0.4814546597003937.
    static JsonNode Exact(float f) => JsonValue.Create(double.Parse(f.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));

    internal static readonly (float, float, float) ClipMean = (0.48145466f, 0.4578275f, 0.40821073f);
    internal static readonly (float, float, float) ClipStd = (0.26862954f, 0.26130258f, 0.27577711f);
}
