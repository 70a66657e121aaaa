using System.Text.Json;
using System.Text.Json.Nodes;
using ClipSharp.Imaging;

namespace ClipSharp.Checkpoints;

/// <summary>
/// The image normalisation a published checkpoint declares next to its weights: OpenCLIP's
/// <c>open_clip_config.json</c> (<c>preprocess_cfg.mean</c>/<c>std</c>), Hugging Face's
/// <c>preprocessor_config.json</c> (<c>image_mean</c>/<c>image_std</c>), or the metadata <c>ClipModel.Save</c> (ClipSharp.Torch)
/// writes. OpenAI's and the LAION models declare CLIP's own constants; a model trained with others would otherwise be
/// fed wrongly normalised pixels. Resampling and cropping stay CLIP's (bicubic, short side, centre crop): a declared
/// <c>interpolation</c> or <c>resize_mode</c> other than that is refused, naming the file.
/// </summary>
internal static class PreprocessingConfig
{
    /// <summary>Metadata key for the mean and std in checkpoints ClipSharp writes.</summary>
    public const string MetadataKey = "clipsharp.preprocess";

    /// <summary>The mean and std declared for a checkpoint, or null when nothing is declared (CLIP's then apply).</summary>
    /// <param name="checkpointPath">A weights file or a Hugging Face model folder.</param>
    /// <param name="metadata">The checkpoint's metadata (ClipSharp-written files carry the constants there).</param>
    /// <exception cref="ClipSharpException">A declaration is malformed or asks for resampling ClipSharp does not do.</exception>
    public static ((float R, float G, float B) Mean, (float R, float G, float B) Std)? Find(string checkpointPath, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(checkpointPath);
        if (metadata is not null && metadata.TryGetValue(MetadataKey, out var json))
            return ReadPair(Parse(json, checkpointPath + " metadata"), "mean", "std", checkpointPath + " metadata");
        string dir = Directory.Exists(checkpointPath) ? checkpointPath : Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!;
        string openClip = Path.Combine(dir, OpenClipConfig.HubConfigFileName);
        if (OpenClipConfig.IsHubWeightsName(checkpointPath) && File.Exists(openClip) && Parse(File.ReadAllText(openClip), openClip)["preprocess_cfg"] is JsonObject pre)
        {
            if (pre["interpolation"] is JsonValue i && i.TryGetValue<string>(out var interp) && interp != "bicubic")
                throw new ClipSharpException($"{openClip}: preprocess_cfg.interpolation is '{interp}'; ClipSharp resizes bicubically (as CLIP does)");
            if (pre["resize_mode"] is JsonValue m && m.TryGetValue<string>(out var mode) && mode != "shortest")
                throw new ClipSharpException($"{openClip}: preprocess_cfg.resize_mode is '{mode}'; ClipSharp resizes the short side and centre-crops (as CLIP does)");
            return ReadPair(pre, "mean", "std", openClip);
        }
        // Hugging Face's: for a model folder, or its weights under the names it publishes them with.
        string hf = Path.Combine(dir, "preprocessor_config.json");
        bool hfWeights = Directory.Exists(checkpointPath) || Path.GetFileName(checkpointPath) is "model.safetensors" or "pytorch_model.bin";
        if (hfWeights && File.Exists(hf)) return ReadPair(Parse(File.ReadAllText(hf), hf), "image_mean", "image_std", hf);
        return null;
    }

    /// <summary>The metadata value <see cref="Find"/> reads back.</summary>
    public static string ToMetadata((float R, float G, float B) mean, (float R, float G, float B) std) =>
        new JsonObject { ["mean"] = new JsonArray(mean.R, mean.G, mean.B), ["std"] = new JsonArray(std.R, std.G, std.B) }.ToJsonString();

    static JsonObject Parse(string json, string source)
    {
        try { return JsonNode.Parse(json) as JsonObject ?? throw new ClipSharpException($"{source}: expected a JSON object"); }
        catch (JsonException e) { throw new ClipSharpException($"{source}: not valid JSON ({e.Message})", e); }
    }

    static ((float, float, float), (float, float, float))? ReadPair(JsonObject o, string meanKey, string stdKey, string source)
    {
        if (o[meanKey] is null && o[stdKey] is null) return null;
        (float, float, float) Triple(string key)
        {
            if (o[key] is JsonArray { Count: 3 } a && a.All(x => x is JsonValue v && v.TryGetValue<double>(out _)))
            {
                var d = a.Select(x => (float)x!.GetValue<double>()).ToArray();
                if (key == stdKey && d.Any(x => x <= 0)) throw new ClipSharpException($"{source}: {key} must be positive");
                return (d[0], d[1], d[2]);
            }
            throw new ClipSharpException($"{source}: {key} must be three numbers (R, G, B)");
        }
        return (Triple(meanKey), Triple(stdKey));
    }
}
