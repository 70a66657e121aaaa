using ClipSharp.Modeling;

namespace ClipSharp.Checkpoints;

/// <summary>
/// Whether an architecture fits a checkpoint's tensor shapes, field by field, without building the model: a config
/// passed beside weights it does not describe is named by its first wrong field instead of a list of tensor shapes.
/// Only what the shapes show is compared (not head counts or the activation).
/// </summary>
public static class ConfigFit
{
    /// <summary>
    /// The first field of <paramref name="config"/> the shapes contradict, as "field: X in the config, Y in the weights",
    /// or null when every field the shapes show agrees. Keys that are absent are not compared (the loader reports them).
    /// </summary>
    public static string? FirstMismatch(ClipConfig config, IReadOnlyDictionary<string, long[]> shapes)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(shapes);
        long? Dim(string key, int axis) => shapes.TryGetValue(key, out var s) && axis < s.Length ? s[axis < 0 ? s.Length + axis : axis] : null;
        static string Say(string field, object mine, object theirs) => $"{field}: {mine} in the config, {theirs} in the weights";
        int Count(string prefix, int segment) => shapes.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k.Split('.')).Where(p => p.Length > segment).Select(p => p[segment]).Distinct().Count();

        bool weightsVit = shapes.ContainsKey("visual.proj") || shapes.ContainsKey("visual.conv1.weight") && !shapes.ContainsKey("visual.attnpool.positional_embedding");
        bool weightsResNet = shapes.ContainsKey("visual.attnpool.positional_embedding");
        if (config.IsVit && weightsResNet) return Say("image tower", "ViT", "ModifiedResNet");
        if (!config.IsVit && weightsVit) return Say("image tower", "ModifiedResNet", "ViT");
        if (config.IsVit && weightsVit)
        {
            if (Dim("visual.conv1.weight", 0) is long w && w != config.VisionWidth) return Say("vision_width", config.VisionWidth, w);
            int layers = shapes.Keys.Count(k => k.StartsWith("visual.transformer.resblocks.", StringComparison.Ordinal) && k.EndsWith(".attn.in_proj_weight", StringComparison.Ordinal));
            if (layers > 0 && layers != config.VisionLayers[0]) return Say("vision_layers", config.VisionLayers[0], layers);
            if (Dim("visual.conv1.weight", -1) is long p && p != config.VisionPatchSize) return Say("vision_patch_size", config.VisionPatchSize!, p);
            long grid = config.ImageResolution / config.VisionPatchSize!.Value;
            if (Dim("visual.positional_embedding", 0) is long rows && rows != grid * grid + 1)
                return Say("image_resolution", $"{config.ImageResolution} ({grid * grid + 1} position rows)", $"{rows} position rows");
            if (Dim("visual.transformer.resblocks.0.mlp.c_fc.weight", 0) is long vm && vm != config.VisionMlpWidth) return Say("vision_mlp_width", config.VisionMlpWidth, vm);
        }
        else if (!config.IsVit && weightsResNet)
        {
            if (Dim("visual.layer1.0.conv1.weight", 0) is long w && w != config.VisionWidth) return Say("vision_width", config.VisionWidth, w);
            var stages = Enumerable.Range(1, 4).Select(b => Count($"visual.layer{b}.", 2)).ToArray();
            if (stages.Any(s => s > 0) && !stages.AsSpan().SequenceEqual(config.VisionLayers))
                return Say("vision_layers", $"[{string.Join(", ", config.VisionLayers)}]", $"[{string.Join(", ", stages)}]");
            long grid = ClipConfig.ResNetGrid(config.ImageResolution);
            if (Dim("visual.attnpool.positional_embedding", 0) is long rows && rows != grid * grid + 1)
                return Say("image_resolution", $"{config.ImageResolution} ({grid * grid + 1} position rows)", $"{rows} position rows");
        }
        if (Dim("text_projection", 1) is long e && e != config.EmbedDim) return Say("embed_dim", config.EmbedDim, e);
        if (Dim("positional_embedding", 0) is long c && c != config.ContextLength) return Say("context_length", config.ContextLength, c);
        if (Dim("token_embedding.weight", 0) is long v && v != config.VocabSize) return Say("vocab_size", config.VocabSize, v);
        if (Dim("ln_final.weight", 0) is long tw && tw != config.TransformerWidth) return Say("transformer_width", config.TransformerWidth, tw);
        int textLayers = Count("transformer.resblocks.", 2);
        if (textLayers > 0 && textLayers != config.TransformerLayers) return Say("transformer_layers", config.TransformerLayers, textLayers);
        if (Dim("transformer.resblocks.0.mlp.c_fc.weight", 0) is long tm && tm != config.TextMlpWidth) return Say("transformer_mlp_width", config.TextMlpWidth, tm);
        return null;
    }

    /// <summary>Where a config came from (<see cref="ClipModel.ResolveConfig"/>'s source), as a sentence's subject.</summary>
    internal static string Describe(string source) => source switch
    {
        "checkpoint metadata" => "the config in the checkpoint's metadata",
        "Hugging Face config.json" => "the Hugging Face config.json",
        _ => $"config {source}",
    };
}
