using System.Text.Json;
using System.Text.Json.Nodes;
using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Checkpoints;

/// <summary>
/// Converts between the Hugging Face <c>CLIPModel</c> state_dict layout and the OpenAI (reference) layout, and reads
/// and writes Hugging Face <c>config.json</c> files. Hugging Face's CLIPModel only has a ViT image tower, so ResNet
/// models cannot be expressed in its layout. Tensors that map one-to-one share storage with the input
/// (aliases); split, concatenated and transposed tensors are new copies. The input is left intact either way.
/// </summary>
public static class HuggingFaceLayout
{
    /// <summary>Key that marks a Hugging Face CLIPModel state_dict.</summary>
    public const string VisionMarkerKey = "vision_model.embeddings.patch_embedding.weight";

    /// <summary>Key that marks a Hugging Face CLIP text model state_dict.</summary>
    public const string TextMarkerKey = "text_model.embeddings.token_embedding.weight";

    /// <summary>True when the keys look like a Hugging Face CLIPModel checkpoint.</summary>
    public static bool IsHuggingFace(IEnumerable<string> keys) =>
        keys.Any(k => k == VisionMarkerKey || k == TextMarkerKey || k.StartsWith("vision_model.", StringComparison.Ordinal) || k.StartsWith("text_model.", StringComparison.Ordinal));

    const string HfVision = "vision_model.";
    const string HfText = "text_model.";

    static readonly (string Hf, string OpenAI)[] BlockPairs =
    [
        ("self_attn.out_proj.weight", "attn.out_proj.weight"), ("self_attn.out_proj.bias", "attn.out_proj.bias"),
        ("layer_norm1.weight", "ln_1.weight"), ("layer_norm1.bias", "ln_1.bias"),
        ("mlp.fc1.weight", "mlp.c_fc.weight"), ("mlp.fc1.bias", "mlp.c_fc.bias"),
        ("mlp.fc2.weight", "mlp.c_proj.weight"), ("mlp.fc2.bias", "mlp.c_proj.bias"),
        ("layer_norm2.weight", "ln_2.weight"), ("layer_norm2.bias", "ln_2.bias"),
    ];

    /// <summary>
    /// Converts a Hugging Face CLIPModel state_dict to the OpenAI layout, in the reference state_dict order.
    /// q/k/v projections are packed into <c>attn.in_proj_weight</c>/<c>in_proj_bias</c> (q, k, v rows),
    /// <c>visual_projection.weight</c> and <c>text_projection.weight</c> are transposed, <c>position_ids</c> are dropped.
    /// </summary>
    /// <param name="hf">The Hugging Face tensors (not modified).</param>
    /// <param name="config">Optional config, used to check the layer counts; otherwise they are counted from the keys.</param>
    /// <exception cref="ClipSharpException">A required key is missing or an unknown key is present.</exception>
    public static StateDict ToOpenAI(StateDict hf, ClipConfig? config = null)
    {
        ArgumentNullException.ThrowIfNull(hf);
        int visionLayers = CountLayers(hf, HfVision + "encoder.layers.");
        int textLayers = CountLayers(hf, HfText + "encoder.layers.");
        if (config is not null)
        {
            if (!config.IsVit) throw new NotSupportedException(ResNetMessage);
            if (config.VisionLayers[0] != visionLayers || config.TransformerLayers != textLayers)
                throw new ClipSharpException($"Hugging Face checkpoint has {visionLayers} vision and {textLayers} text layers but the config says {config.VisionLayers[0]} and {config.TransformerLayers}");
        }
        var used = new HashSet<string>(StringComparer.Ordinal);
        Tensor Get(string key)
        {
            if (!hf.TryGetValue(key, out var t)) throw new ClipSharpException($"Hugging Face CLIP checkpoint is missing '{key}'");
            used.Add(key);
            return t;
        }

        var o = new StateDict();
        try
        {
            using var scope = torch.NewDisposeScope();
            o.Add("positional_embedding", Get(HfText + "embeddings.position_embedding.weight").alias());
            o.Add("text_projection", Get("text_projection.weight").t().contiguous());
            o.Add("logit_scale", Get("logit_scale").alias());
            o.Add("visual.class_embedding", Get(HfVision + "embeddings.class_embedding").alias());
            o.Add("visual.positional_embedding", Get(HfVision + "embeddings.position_embedding.weight").alias());
            o.Add("visual.proj", Get("visual_projection.weight").t().contiguous());
            o.Add("visual.conv1.weight", Get(HfVision + "embeddings.patch_embedding.weight").alias());
            o.Add("visual.ln_pre.weight", Get(HfVision + "pre_layrnorm.weight").alias());
            o.Add("visual.ln_pre.bias", Get(HfVision + "pre_layrnorm.bias").alias());
            for (int i = 0; i < visionLayers; i++) BlockToOpenAI(Get, o, $"{HfVision}encoder.layers.{i}.", $"visual.transformer.resblocks.{i}.");
            o.Add("visual.ln_post.weight", Get(HfVision + "post_layernorm.weight").alias());
            o.Add("visual.ln_post.bias", Get(HfVision + "post_layernorm.bias").alias());
            for (int i = 0; i < textLayers; i++) BlockToOpenAI(Get, o, $"{HfText}encoder.layers.{i}.", $"transformer.resblocks.{i}.");
            o.Add("token_embedding.weight", Get(HfText + "embeddings.token_embedding.weight").alias());
            o.Add("ln_final.weight", Get(HfText + "final_layer_norm.weight").alias());
            o.Add("ln_final.bias", Get(HfText + "final_layer_norm.bias").alias());

            var unknown = hf.Keys.Where(k => !used.Contains(k) && !k.EndsWith("position_ids", StringComparison.Ordinal)).ToList();
            if (unknown.Count > 0)
                throw new ClipSharpException($"Hugging Face CLIP checkpoint has keys ClipSharp does not know how to map: {string.Join(", ", unknown.Take(10))}{(unknown.Count > 10 ? $" (and {unknown.Count - 10} more)" : "")}");
            return o;
        }
        catch
        {
            o.Dispose();
            throw;
        }
    }

    static void BlockToOpenAI(Func<string, Tensor> get, StateDict o, string hf, string oa)
    {
        o.Add(oa + "attn.in_proj_weight", torch.cat([get(hf + "self_attn.q_proj.weight"), get(hf + "self_attn.k_proj.weight"), get(hf + "self_attn.v_proj.weight")], 0));
        o.Add(oa + "attn.in_proj_bias", torch.cat([get(hf + "self_attn.q_proj.bias"), get(hf + "self_attn.k_proj.bias"), get(hf + "self_attn.v_proj.bias")], 0));
        foreach (var (h, a) in BlockPairs) o.Add(oa + a, get(hf + h).alias());
    }

    /// <summary>
    /// Converts an OpenAI-layout ViT state_dict to the Hugging Face CLIPModel layout (without <c>position_ids</c>).
    /// </summary>
    /// <exception cref="NotSupportedException">The model has a ResNet image tower, which Hugging Face CLIPModel lacks.</exception>
    public static StateDict FromOpenAI(StateDict openai, ClipConfig config)
    {
        ArgumentNullException.ThrowIfNull(openai);
        ArgumentNullException.ThrowIfNull(config);
        if (!config.IsVit || !openai.ContainsKey("visual.proj")) throw new NotSupportedException(ResNetMessage);
        Tensor Get(string key) => openai.TryGetValue(key, out var t) ? t : throw new ClipSharpException($"OpenAI CLIP state_dict is missing '{key}'");

        var o = new StateDict();
        try
        {
            using var scope = torch.NewDisposeScope();
            o.Add(HfText + "embeddings.token_embedding.weight", Get("token_embedding.weight").alias());
            o.Add(HfText + "embeddings.position_embedding.weight", Get("positional_embedding").alias());
            for (int i = 0; i < config.TransformerLayers; i++) BlockFromOpenAI(Get, o, $"transformer.resblocks.{i}.", $"{HfText}encoder.layers.{i}.");
            o.Add(HfText + "final_layer_norm.weight", Get("ln_final.weight").alias());
            o.Add(HfText + "final_layer_norm.bias", Get("ln_final.bias").alias());
            o.Add(HfVision + "embeddings.class_embedding", Get("visual.class_embedding").alias());
            o.Add(HfVision + "embeddings.patch_embedding.weight", Get("visual.conv1.weight").alias());
            o.Add(HfVision + "embeddings.position_embedding.weight", Get("visual.positional_embedding").alias());
            o.Add(HfVision + "pre_layrnorm.weight", Get("visual.ln_pre.weight").alias());
            o.Add(HfVision + "pre_layrnorm.bias", Get("visual.ln_pre.bias").alias());
            for (int i = 0; i < config.VisionLayers[0]; i++) BlockFromOpenAI(Get, o, $"visual.transformer.resblocks.{i}.", $"{HfVision}encoder.layers.{i}.");
            o.Add(HfVision + "post_layernorm.weight", Get("visual.ln_post.weight").alias());
            o.Add(HfVision + "post_layernorm.bias", Get("visual.ln_post.bias").alias());
            o.Add("visual_projection.weight", Get("visual.proj").t().contiguous());
            o.Add("text_projection.weight", Get("text_projection").t().contiguous());
            o.Add("logit_scale", Get("logit_scale").alias());
            return o;
        }
        catch
        {
            o.Dispose();
            throw;
        }
    }

    static void BlockFromOpenAI(Func<string, Tensor> get, StateDict o, string oa, string hf)
    {
        var w = get(oa + "attn.in_proj_weight");
        var b = get(oa + "attn.in_proj_bias");
        long width = w.shape[1];
        if (w.shape[0] != 3 * width) throw new ClipSharpException($"'{oa}attn.in_proj_weight' has shape [{string.Join(",", w.shape)}], expected [{3 * width},{width}]");
        // Hugging Face declares k, v, q in this order.
        string[] names = ["k_proj", "v_proj", "q_proj"];
        int[] rows = [1, 2, 0];
        for (int j = 0; j < 3; j++)
        {
            o.Add($"{hf}self_attn.{names[j]}.weight", w.narrow(0, rows[j] * width, width).clone());
            o.Add($"{hf}self_attn.{names[j]}.bias", b.narrow(0, rows[j] * width, width).clone());
        }
        foreach (var (h, a) in BlockPairs) o.Add(hf + h, get(oa + a).alias());
    }

    static int CountLayers(StateDict sd, string prefix)
    {
        int n = 0;
        foreach (var k in sd.Keys)
        {
            if (!k.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var rest = k.AsSpan(prefix.Length);
            int dot = rest.IndexOf('.');
            if (dot > 0 && int.TryParse(rest[..dot], out var i)) n = Math.Max(n, i + 1);
        }
        return n;
    }

    const string ResNetMessage =
        "Hugging Face CLIPModel supports only the ViT image tower; ResNet CLIP models (RN50, RN101, RN50x4, ...) have no Hugging Face layout. Save them as safetensors in the OpenAI layout instead.";

    /// <summary>
    /// Reads a Hugging Face CLIP <c>config.json</c> into a <see cref="ClipConfig"/>: <c>projection_dim</c>, the
    /// <c>vision_config</c> (hidden_size, num_hidden_layers, num_attention_heads, patch_size, image_size) and the
    /// <c>text_config</c> (hidden_size, num_hidden_layers, num_attention_heads, max_position_embeddings, vocab_size).
    /// Missing fields take Hugging Face's CLIPConfig defaults (those of ViT-B/32). Vision heads that differ from
    /// width/64 are kept in <see cref="ClipConfig.VisionHeadsOverride"/>.
    /// </summary>
    /// <remarks><c>hidden_act</c> (<c>quick_gelu</c> or <c>gelu</c>, the same in both towers) and <c>intermediate_size</c> are
    /// read too; the LAION models converted to this layout use exact GELU.</remarks>
    /// <exception cref="ClipSharpException">Not valid JSON, another activation, or different activations in the two towers.</exception>
    public static ClipConfig ReadConfig(string configJsonPath)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(configJsonPath)); }
        catch (JsonException e) { throw new ClipSharpException($"{configJsonPath}: not valid JSON ({e.Message})", e); }
        if (root is not JsonObject obj) throw new ClipSharpException($"{configJsonPath}: expected a JSON object");
        var vision = (obj["vision_config"] ?? obj["vision_config_dict"]) as JsonObject ?? new JsonObject();
        var text = (obj["text_config"] ?? obj["text_config_dict"]) as JsonObject ?? new JsonObject();
        int Int(JsonObject o, string name, int dflt)
        {
            var n = o[name];
            if (n is null) return dflt;
            return n is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw new ClipSharpException($"{configJsonPath}: '{name}' is not an integer");
        }
        MlpActivation? activation = null;
        foreach (var (part, o) in new[] { ("vision_config", vision), ("text_config", text) })
        {
            // Hugging Face's CLIPVisionConfig/CLIPTextConfig default is quick_gelu.
            var name = o["hidden_act"] switch
            {
                null => "quick_gelu",
                JsonValue v when v.TryGetValue<string>(out var a) => a,
                _ => throw new ClipSharpException($"{configJsonPath}: {part}.hidden_act is not a string"),
            };
            var act = ClipConfig.ParseActivation(name, $"{configJsonPath}: {part}.hidden_act");
            if (activation is not null && activation != act)
                throw new ClipSharpException($"{configJsonPath}: the towers use different activations ({ClipConfig.ActivationName(activation.Value)} and {name}); ClipSharp uses one for both");
            activation = act;
        }
        int visionWidth = Int(vision, "hidden_size", 768);
        int visionHeads = Int(vision, "num_attention_heads", 12);
        var cfg = new ClipConfig(
            EmbedDim: Int(obj, "projection_dim", 512),
            ImageResolution: Int(vision, "image_size", 224),
            VisionLayers: [Int(vision, "num_hidden_layers", 12)],
            VisionWidth: visionWidth,
            VisionPatchSize: Int(vision, "patch_size", 32),
            ContextLength: Int(text, "max_position_embeddings", 77),
            VocabSize: Int(text, "vocab_size", 49408),
            TransformerWidth: Int(text, "hidden_size", 512),
            TransformerHeads: Int(text, "num_attention_heads", 8),
            TransformerLayers: Int(text, "num_hidden_layers", 12));
        if (visionHeads != cfg.VisionHeads) cfg = cfg with { VisionHeadsOverride = visionHeads };
        cfg = cfg with { Activation = activation!.Value };
        int visionMlp = Int(vision, "intermediate_size", 4 * cfg.VisionWidth), textMlp = Int(text, "intermediate_size", 4 * cfg.TransformerWidth);
        if (visionMlp != cfg.VisionMlpWidth) cfg = cfg with { VisionMlpWidthOverride = visionMlp };
        if (textMlp != cfg.TextMlpWidth) cfg = cfg with { TextMlpWidthOverride = textMlp };
        cfg.Validate(configJsonPath);
        return cfg;
    }

    /// <summary>Renders a Hugging Face CLIPModel <c>config.json</c> for a ViT config.</summary>
    /// <exception cref="NotSupportedException">The config describes a ResNet image tower.</exception>
    public static string ToConfigJson(ClipConfig config)
    {
        if (!config.IsVit) throw new NotSupportedException(ResNetMessage);
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPModel"),
            ["model_type"] = "clip",
            ["projection_dim"] = config.EmbedDim,
            ["logit_scale_init_value"] = 2.6592,
            ["text_config"] = new JsonObject
            {
                ["model_type"] = "clip_text_model",
                ["hidden_size"] = config.TransformerWidth,
                ["intermediate_size"] = config.TextMlpWidth,
                ["num_hidden_layers"] = config.TransformerLayers,
                ["num_attention_heads"] = config.TransformerHeads,
                ["max_position_embeddings"] = config.ContextLength,
                ["vocab_size"] = config.VocabSize,
                ["projection_dim"] = config.EmbedDim,
                ["hidden_act"] = ClipConfig.ActivationName(config.Activation),
                ["layer_norm_eps"] = 1e-5,
                ["bos_token_id"] = 49406,
                ["eos_token_id"] = 49407,
            },
            ["vision_config"] = new JsonObject
            {
                ["model_type"] = "clip_vision_model",
                ["hidden_size"] = config.VisionWidth,
                ["intermediate_size"] = config.VisionMlpWidth,
                ["num_hidden_layers"] = config.VisionLayers[0],
                ["num_attention_heads"] = config.EffectiveVisionHeads,
                ["patch_size"] = config.VisionPatchSize,
                ["image_size"] = config.ImageResolution,
                ["num_channels"] = 3,
                ["projection_dim"] = config.EmbedDim,
                ["hidden_act"] = ClipConfig.ActivationName(config.Activation),
                ["layer_norm_eps"] = 1e-5,
            },
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes <see cref="ToConfigJson"/> to a file.</summary>
    public static void WriteConfig(ClipConfig config, string configJsonPath) => File.WriteAllText(configJsonPath, ToConfigJson(config));
}
