using System.Text.Json.Nodes;
using ClipSharp.Modeling;

namespace ClipSharp.Checkpoints;

/// <summary>
/// Reads OpenCLIP model configs: the <c>model_configs/*.json</c> files (<c>embed_dim</c>, <c>quick_gelu</c>,
/// <c>vision_cfg</c>, <c>text_cfg</c>) and the <c>open_clip_config.json</c> published next to OpenCLIP weights on the
/// Hugging Face hub (the same object under <c>model_cfg</c>). Only the architectures ClipSharp builds are accepted: the
/// CLIP ViT and modified ResNet image towers and the CLIP text transformer, with any widths, depths, head widths and MLP
/// ratios. A config that asks for anything else (timm or Hugging Face towers, layer scale, attentional pooling, other
/// pooling or normalisation, SigLIP's logit bias) is refused with the field that needs it, rather than loaded into a
/// model that would compute something different.
/// </summary>
/// <remarks>
/// OpenCLIP's defaults apply to missing fields, and they differ from the OpenAI constructor's in one place that
/// matters: without <c>"quick_gelu": true</c> the MLPs use exact GELU.
/// </remarks>
internal static class OpenClipConfig
{
    /// <summary>True when the JSON object is an OpenCLIP model config, bare or as an <c>open_clip_config.json</c>.</summary>
    public static bool IsOpenClip(JsonObject obj)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var cfg = obj["model_cfg"] as JsonObject ?? obj;
        return cfg["vision_cfg"] is JsonObject || cfg["text_cfg"] is JsonObject;
    }

    /// <summary>Converts an OpenCLIP model config into ClipSharp's <see cref="ClipConfig"/>.</summary>
    /// <param name="obj">The config object (or an <c>open_clip_config.json</c> with it under <c>model_cfg</c>).</param>
    /// <param name="source">Named in error messages (usually the file path).</param>
    /// <exception cref="ClipSharpException">A field has the wrong type, or the config describes an architecture ClipSharp does not build.</exception>
    public static ClipConfig Read(JsonObject obj, string source)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var cfg = obj["model_cfg"] as JsonObject ?? obj;
        var vision = cfg["vision_cfg"] as JsonObject ?? new JsonObject();
        var text = cfg["text_cfg"] as JsonObject ?? new JsonObject();

        Refuse(cfg, "", source, ("custom_text", False), ("init_logit_bias", Null), ("cast_dtype", Null));
        Refuse(vision, "vision_cfg.", source,
            ("timm_model_name", Null), ("ls_init_value", Null), ("patch_dropout", Zero), ("attentional_pool", False),
            ("attn_pooler_queries", Ignored), ("no_ln_pre", False), ("pos_embed_type", Is("learnable")),
            ("final_ln_after_pool", False), ("pool_type", Is("tok")), ("global_average_pool", False),
            ("input_patchnorm", False), ("act_kwargs", EmptyObject), ("norm_kwargs", EmptyObject), ("block_type", Null),
            ("output_tokens", Ignored));
        Refuse(text, "text_cfg.", source,
            ("hf_model_name", Null), ("ls_init_value", Null), ("embed_cls", False), ("no_causal_mask", False),
            ("final_ln_after_pool", False), ("pool_type", Is("argmax")), ("proj_bias", False), ("proj_type", Is("linear")),
            ("act_kwargs", EmptyObject), ("norm_kwargs", EmptyObject), ("block_type", Null), ("pad_id", Ignored),
            ("hf_tokenizer_name", Null), ("tokenizer_kwargs", Ignored), ("output_tokens", Ignored));

        int Int(JsonObject o, string prefix, string name, int dflt) => o[name] switch
        {
            null => dflt,
            JsonValue v when v.TryGetValue<int>(out var i) => i,
            _ => throw new ClipSharpException($"{source}: {prefix}{name} is not an integer"),
        };
        double Ratio(JsonObject o, string prefix) => o["mlp_ratio"] switch
        {
            null => 4.0,
            JsonValue v when v.TryGetValue<double>(out var d) && d > 0 => d,
            _ => throw new ClipSharpException($"{source}: {prefix}mlp_ratio is not a positive number"),
        };

        int embedDim = Int(cfg, "", "embed_dim", 512);
        bool quickGelu = cfg["quick_gelu"] switch
        {
            null => false,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            _ => throw new ClipSharpException($"{source}: quick_gelu is not true or false"),
        };

        int imageSize = vision["image_size"] switch
        {
            null => 224,
            JsonValue v when v.TryGetValue<int>(out var i) => i,
            JsonArray { Count: 2 } a when a[0] is JsonValue h && h.TryGetValue<int>(out var hi) && a[1] is JsonValue w && w.TryGetValue<int>(out var wi) =>
                hi == wi ? hi : throw new ClipSharpException($"{source}: vision_cfg.image_size [{hi}, {wi}] is not square; ClipSharp's image towers take square images"),
            _ => throw new ClipSharpException($"{source}: vision_cfg.image_size is neither an integer nor a pair"),
        };
        int visionWidth = Int(vision, "vision_cfg.", "width", 768);
        int headWidth = Int(vision, "vision_cfg.", "head_width", 64);
        if (headWidth <= 0) throw new ClipSharpException($"{source}: vision_cfg.head_width must be positive");
        int[] visionLayers;
        int? patch;
        int visionHeads;
        switch (vision["layers"])
        {
            case JsonArray stages:
                if (stages.Count != 4 || stages.Any(s => s is not JsonValue sv || !sv.TryGetValue<int>(out _)))
                    throw new ClipSharpException($"{source}: vision_cfg.layers of a ResNet image tower must be four integers");
                visionLayers = stages.Select(s => s!.GetValue<int>()).ToArray();
                patch = null;
                visionHeads = visionWidth * 32 / headWidth;
                break;
            default:
                visionLayers = [Int(vision, "vision_cfg.", "layers", 12)];
                patch = Int(vision, "vision_cfg.", "patch_size", 16);
                visionHeads = visionWidth / headWidth;
                break;
        }
        int textWidth = Int(text, "text_cfg.", "width", 512);

        var config = new ClipConfig(embedDim, imageSize, visionLayers, visionWidth, patch,
            Int(text, "text_cfg.", "context_length", 77), Int(text, "text_cfg.", "vocab_size", 49408),
            textWidth, Int(text, "text_cfg.", "heads", 8), Int(text, "text_cfg.", "layers", 12))
        {
            Activation = quickGelu ? MlpActivation.QuickGelu : MlpActivation.Gelu,
        };
        if (visionHeads != config.VisionHeads) config = config with { VisionHeadsOverride = visionHeads };
        // OpenCLIP sizes the hidden layer as int(width * mlp_ratio), truncating a Python float product.
        if (patch is not null)
        {
            int mlp = (int)(visionWidth * Ratio(vision, "vision_cfg."));
            if (mlp != 4 * visionWidth) config = config with { VisionMlpWidthOverride = mlp };
        }
        int textMlp = (int)(textWidth * Ratio(text, "text_cfg."));
        if (textMlp != 4 * textWidth) config = config with { TextMlpWidthOverride = textMlp };
        config.Validate(source);
        return config;
    }

    /// <summary>Fails when any listed field is present with a value its check rejects.</summary>
    static void Refuse(JsonObject o, string prefix, string source, params (string Name, Func<JsonNode?, bool> Accepts)[] fields)
    {
        foreach (var (name, accepts) in fields)
        {
            if (!o.TryGetPropertyValue(name, out var value) || accepts(value)) continue;
            throw new ClipSharpException(
                $"{source}: {prefix}{name} = {value?.ToJsonString() ?? "null"} asks for an OpenCLIP architecture variant ClipSharp does not build " +
                "(it builds the CLIP ViT and modified ResNet image towers and the CLIP text transformer)");
        }
    }

    static bool Null(JsonNode? v) => v is null;

    static bool Ignored(JsonNode? v) => true;

    static bool False(JsonNode? v) => v is null || (v is JsonValue b && b.TryGetValue<bool>(out var x) && !x);

    static bool Zero(JsonNode? v) => v is null || (v is JsonValue d && d.TryGetValue<double>(out var x) && x == 0);

    static bool EmptyObject(JsonNode? v) => v is null || v is JsonObject { Count: 0 };

    static Func<JsonNode?, bool> Is(string expected) =>
        v => v is null || (v is JsonValue s && s.TryGetValue<string>(out var x) && string.Equals(x, expected, StringComparison.Ordinal));

    /// <summary>The file name OpenCLIP's hub integration uses for its config.</summary>
    public const string HubConfigFileName = "open_clip_config.json";

    /// <summary>True for the weight file names OpenCLIP publishes beside <see cref="HubConfigFileName"/> (<c>open_clip_*</c>).</summary>
    public static bool IsHubWeightsName(string path) =>
        Path.GetFileName(path.TrimEnd('/', '\\')).StartsWith("open_clip", StringComparison.Ordinal);
}
