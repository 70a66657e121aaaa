using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClipSharp.Imaging;
using ClipSharp.Text;

namespace ClipSharp.Modeling;

/// <summary>
/// The files of a CLIP model exported to ONNX (<c>clip export onnx</c>), and the JSON beside the graphs: what the
/// exporter (ClipSharp.Torch) writes and the ONNX Runtime backend (ClipSharp.Onnx) reads, with no TorchSharp.
/// </summary>
/// <remarks>
/// A directory holds <see cref="VisionModelFile"/> (<c>pixel_values</c> float32 [batch, 3, R, R] → <c>image_embeds</c>
/// [batch, D]) and <see cref="TextModelFile"/> (<c>input_ids</c> int64 [batch, context] → <c>text_embeds</c> [batch, D]),
/// the names transformers.js and Optimum's split export use; <see cref="PreprocessorFile"/> in Hugging Face's
/// <c>preprocessor_config.json</c> form (size, crop, mean, std, resample 3 = bicubic); <see cref="ConfigFile"/>
/// (<see cref="ClipConfig.ToJson"/>); the vocabulary file(s) the model's tokenizer was loaded from; and
/// <see cref="ManifestFile"/>, which records the vocabulary (name, SHA-256), the temperature and the quantisation.
/// </remarks>
public sealed record OnnxExportLayout
{
    /// <summary>The image tower graph.</summary>
    public const string VisionModelFile = "vision_model.onnx";

    /// <summary>The text tower graph.</summary>
    public const string TextModelFile = "text_model.onnx";

    /// <summary>The architecture, <see cref="ClipConfig.ToJson"/>.</summary>
    public const string ConfigFile = "clip_config.json";

    /// <summary>The preprocessing, Hugging Face's <c>preprocessor_config.json</c> fields.</summary>
    public const string PreprocessorFile = "preprocessor_config.json";

    /// <summary>ClipSharp's record of the export.</summary>
    public const string ManifestFile = "clipsharp_onnx.json";

    /// <summary>The <c>format</c> value of the manifest.</summary>
    public const string Format = "clipsharp-onnx";

    /// <summary>The ONNX opset of the graphs.</summary>
    public const int Opset = 17;

    /// <summary>ln of the temperature (the model's <c>logit_scale</c> parameter); logits use its exponential.</summary>
    public required float LogitScaleLog { get; init; }

    /// <summary>The vocabulary the text tower's ids belong to (its file(s) lie beside the graphs).</summary>
    public required VocabularyRecord Vocabulary { get; init; }

    /// <summary>"none" (float32 weights) or "int8" (int8 weights, activations quantised dynamically).</summary>
    public string Quantization { get; init; } = "none";

    /// <summary>The manifest's JSON.</summary>
    public string ToJson() => new JsonObject
    {
        ["format"] = Format,
        ["format_version"] = 1,
        ["opset"] = Opset,
        ["vision_model"] = VisionModelFile,
        ["text_model"] = TextModelFile,
        ["config"] = ConfigFile,
        ["preprocessing"] = PreprocessorFile,
        ["logit_scale"] = LogitScaleLog,
        ["quantization"] = Quantization,
        ["vocabulary"] = JsonNode.Parse(Vocabulary.ToJson()),
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Reads <see cref="ManifestFile"/> back; <paramref name="source"/> names the file in errors.</summary>
    /// <exception cref="ClipSharpException">Not a ClipSharp ONNX export, or malformed.</exception>
    public static OnnxExportLayout FromJson(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new ClipSharpException($"{source}: expected a JSON object"); }
        catch (JsonException e) { throw new ClipSharpException($"{source}: not valid JSON ({e.Message})", e); }
        if (o["format"] is not JsonValue f || !f.TryGetValue<string>(out var format) || format != Format)
            throw new ClipSharpException($"{source}: not a ClipSharp ONNX export (format is not '{Format}')");
        if (o["logit_scale"] is not JsonValue s || !s.TryGetValue<double>(out var scale) || !double.IsFinite(scale))
            throw new ClipSharpException($"{source}: missing or non-numeric logit_scale");
        if (o["vocabulary"] is not JsonObject v) throw new ClipSharpException($"{source}: missing vocabulary record");
        string quant = o["quantization"] is JsonValue q && q.TryGetValue<string>(out var qs) ? qs : "none";
        if (quant is not ("none" or "int8")) throw new ClipSharpException($"{source}: unknown quantization '{quant}'");
        return new OnnxExportLayout { LogitScaleLog = (float)scale, Vocabulary = VocabularyRecord.FromJson(v.ToJsonString(), source), Quantization = quant };
    }

    /// <summary>
    /// Hugging Face's <c>preprocessor_config.json</c> for CLIP's pipeline: the short side resized to <c>size</c>
    /// bicubically (<c>resample</c> 3), a centre crop of <c>crop_size</c>, then (x/255 − mean)/std.
    /// </summary>
    public static string PreprocessorJson(ClipImagePreprocessorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        JsonArray Triple((float R, float G, float B) t) => new(t.R, t.G, t.B);
        return new JsonObject
        {
            ["image_processor_type"] = "CLIPImageProcessor",
            ["feature_extractor_type"] = "CLIPFeatureExtractor",
            ["do_resize"] = true,
            ["size"] = new JsonObject { ["shortest_edge"] = options.Size },
            ["resample"] = 3,
            ["do_center_crop"] = true,
            ["crop_size"] = new JsonObject { ["height"] = options.Size, ["width"] = options.Size },
            ["do_rescale"] = true,
            ["rescale_factor"] = 1.0 / 255,
            ["do_normalize"] = true,
            ["image_mean"] = Triple(options.Mean),
            ["image_std"] = Triple(options.Std),
            ["do_convert_rgb"] = true,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Reads <see cref="PreprocessorJson"/>'s form (or another CLIP <c>preprocessor_config.json</c>): size from
    /// <c>crop_size</c>, mean and std. Anything but CLIP's own pipeline (bicubic, short side, centre crop) is refused.
    /// </summary>
    /// <exception cref="ClipSharpException">Malformed, or a pipeline ClipSharp's preprocessor does not compute.</exception>
    public static ClipImagePreprocessorOptions ReadPreprocessor(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new ClipSharpException($"{source}: expected a JSON object"); }
        catch (JsonException e) { throw new ClipSharpException($"{source}: not valid JSON ({e.Message})", e); }
        if (o["resample"] is JsonValue r && (!r.TryGetValue<int>(out var resample) || resample != 3))
            throw new ClipSharpException($"{source}: resample must be 3 (bicubic); ClipSharp resizes as CLIP does");
        if (o["do_center_crop"] is JsonValue c && c.TryGetValue<bool>(out var crop) && !crop)
            throw new ClipSharpException($"{source}: do_center_crop is false; ClipSharp resizes the short side and centre-crops as CLIP does");
        int size = o["crop_size"] switch
        {
            JsonObject cs when cs["height"] is JsonValue h && h.TryGetValue<int>(out var hv) && cs["width"] is JsonValue wv && wv.TryGetValue<int>(out var ww) && hv == ww => hv,
            JsonValue v when v.TryGetValue<int>(out var n) => n,
            _ => throw new ClipSharpException($"{source}: crop_size must be a square size (an integer or equal height and width)"),
        };
        if (size < 1) throw new ClipSharpException($"{source}: crop_size {size} must be positive");
        (float, float, float) Triple(string key, bool positive)
        {
            if (o[key] is JsonArray { Count: 3 } a && a.All(x => x is JsonValue xv && xv.TryGetValue<double>(out _)))
            {
                var d = a.Select(x => (float)x!.GetValue<double>()).ToArray();
                if (positive && d.Any(x => !(x > 0))) throw new ClipSharpException($"{source}: {key} must be positive");
                return (d[0], d[1], d[2]);
            }
            throw new ClipSharpException($"{source}: {key} must be three numbers (R, G, B)");
        }
        return new ClipImagePreprocessorOptions { Size = size, Mean = Triple("image_mean", false), Std = Triple("image_std", true) };
    }

    /// <summary>A short description for messages.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"ClipSharp ONNX export (logit_scale {LogitScaleLog}, {Quantization})");
}
