using ClipSharp.Modeling;

namespace ClipSharp.Checkpoints;

/// <summary>
/// Infers the CLIP constructor arguments from tensor shapes exactly as the reference <c>build_model</c> does,
/// including its blind spots: text heads are always transformer_width / 64 and image resolutions are derived from
/// positional-embedding sizes. Prefer an explicit config when one is available (the golden small models have 2 text
/// heads, which this inference reports as 1). The weights cannot tell QuickGELU from GELU, so the activation is the
/// reference's QuickGELU; OpenCLIP models trained with GELU need their config (see <see cref="OpenClipConfig"/>).
/// </summary>
public static class ArchitectureInference
{
    /// <summary>Infers the config from a loaded state_dict.</summary>
    public static ClipConfig Infer(StateDict stateDict) => Infer(stateDict.Shapes());

    /// <summary>Infers the config from a name → shape map (no weights needed).</summary>
    /// <exception cref="InvalidDataException">Keys are missing, or the text width is below 64 (the reference would divide by zero).</exception>
    public static ClipConfig Infer(IReadOnlyDictionary<string, long[]> shapes)
    {
        long[] Shape(string key) => shapes.TryGetValue(key, out var s) ? s
            : throw new InvalidDataException($"cannot infer the CLIP architecture: the state_dict has no '{key}'");
        int Dim(string key, int axis)
        {
            var s = Shape(key);
            if (axis >= s.Length) throw new InvalidDataException($"cannot infer the CLIP architecture: '{key}' has shape [{string.Join(",", s)}]");
            return checked((int)s[axis]);
        }

        bool vit = shapes.ContainsKey("visual.proj");
        int[] visionLayers;
        int visionWidth, imageResolution;
        int? patch;
        if (vit)
        {
            visionWidth = Dim("visual.conv1.weight", 0);
            visionLayers = [shapes.Keys.Count(k => k.StartsWith("visual.", StringComparison.Ordinal) && k.EndsWith(".attn.in_proj_weight", StringComparison.Ordinal))];
            var conv = Shape("visual.conv1.weight");
            patch = checked((int)conv[^1]);
            // build_model's rule: patch × round(√(rows − 1)). A model built at a side that is not a multiple of the patch
            // (the convolution floors) infers as the multiple below it, the same grid; its config gives the real side.
            int grid = (int)Math.Round(Math.Sqrt(Dim("visual.positional_embedding", 0) - 1), MidpointRounding.ToEven);
            if (grid == 0)
                throw new InvalidDataException("cannot infer the image resolution: visual.positional_embedding has no patch rows (build_model would infer 0 px); pass the config JSON");
            imageResolution = patch.Value * grid;
        }
        else
        {
            visionLayers = new int[4];
            for (int b = 1; b <= 4; b++)
            {
                string prefix = $"visual.layer{b}";
                visionLayers[b - 1] = shapes.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
                    .Select(k => k.Split('.')).Where(p => p.Length > 2).Select(p => p[2]).Distinct().Count();
            }
            visionWidth = Dim("visual.layer1.0.conv1.weight", 0);
            int rows = Dim("visual.attnpool.positional_embedding", 0);
            int outputWidth = (int)Math.Round(Math.Sqrt(rows - 1), MidpointRounding.ToEven);
            if (outputWidth * outputWidth + 1 != rows)
                throw new InvalidDataException($"cannot infer the CLIP architecture: visual.attnpool.positional_embedding has {rows} rows, which is not a square grid plus one");
            // build_model's rule: 32 × the grid side. Resolutions up to 30 px above a multiple of 32 have the same grid
            // and infer as that multiple; their config gives the real side.
            if (outputWidth == 0)
                throw new InvalidDataException("cannot infer the image resolution: visual.attnpool.positional_embedding has a single row (a 31-px model; build_model would infer 0 px); pass the config JSON");
            patch = null;
            imageResolution = outputWidth * 32;
        }

        int embedDim = Dim("text_projection", 1);
        int contextLength = Dim("positional_embedding", 0);
        int vocabSize = Dim("token_embedding.weight", 0);
        int transformerWidth = Dim("ln_final.weight", 0);
        if (transformerWidth < 64)
            throw new InvalidDataException(
                $"cannot infer the text transformer heads: transformer_width is {transformerWidth}, below 64, so the reference rule " +
                "heads = width / 64 gives 0 (build_model crashes with a division by zero here). Pass the hyperparameters explicitly with a config JSON.");
        int transformerHeads = transformerWidth / 64;
        int transformerLayers = shapes.Keys.Where(k => k.StartsWith("transformer.resblocks", StringComparison.Ordinal))
            .Select(k => k.Split('.')).Where(p => p.Length > 2).Select(p => p[2]).Distinct().Count();

        var config = new ClipConfig(embedDim, imageResolution, visionLayers, visionWidth, patch, contextLength, vocabSize,
            transformerWidth, transformerHeads, transformerLayers);
        // Beyond build_model: MLP hidden widths other than 4× (OpenCLIP's ViT-g/14 and ViT-bigG/14) are read off c_fc.
        if (vit && shapes.TryGetValue("visual.transformer.resblocks.0.mlp.c_fc.weight", out var vfc) && vfc.Length == 2 && vfc[0] != 4L * visionWidth)
            config = config with { VisionMlpWidthOverride = checked((int)vfc[0]) };
        if (shapes.TryGetValue("transformer.resblocks.0.mlp.c_fc.weight", out var tfc) && tfc.Length == 2 && tfc[0] != 4L * transformerWidth)
            config = config with { TextMlpWidthOverride = checked((int)tfc[0]) };
        return config;
    }
}
