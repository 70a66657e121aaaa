using ClipSharp.Modeling;

namespace ClipSharp.Training;

/// <summary>Turns off gradients for the parts of a model a fine-tuning run keeps fixed.</summary>
internal static class Freezing
{
    /// <summary>Applies <paramref name="freeze"/> to <paramref name="model"/> (sets requires_grad); returns the frozen parameter names.</summary>
    public static IReadOnlyList<string> Apply(ClipModel model, FreezeSection freeze)
    {
        var frozen = new List<string>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (IsFrozen(name, freeze)) { p.requires_grad = false; frozen.Add(name); }
        }
        return frozen;
    }

    /// <summary>True when the parameter called <paramref name="name"/> (OpenAI key) is frozen by <paramref name="f"/>.</summary>
    public static bool IsFrozen(string name, FreezeSection f)
    {
        if (name == "logit_scale") return f.LockLogitScale;
        bool visual = name.StartsWith("visual.", StringComparison.Ordinal);
        if (visual)
        {
            if (f.LockImage) return true;
            if (f.FreezeImageLayers <= 0) return false;
            // Stem and embeddings sit below the first block; freezing N ≥ 1 layers freezes them too.
            if (name.StartsWith("visual.transformer.resblocks.", StringComparison.Ordinal))
                return BlockIndex(name, "visual.transformer.resblocks.") < f.FreezeImageLayers;
            if (name.StartsWith("visual.layer", StringComparison.Ordinal))
                return name[12] - '1' < f.FreezeImageLayers; // ResNet stages 1–4
            return !(name.StartsWith("visual.ln_post", StringComparison.Ordinal) || name == "visual.proj" || name.StartsWith("visual.attnpool", StringComparison.Ordinal));
        }
        if (f.LockText) return true;
        if (f.FreezeTextLayers <= 0) return false;
        if (name.StartsWith("transformer.resblocks.", StringComparison.Ordinal))
            return BlockIndex(name, "transformer.resblocks.") < f.FreezeTextLayers;
        return name is "token_embedding.weight" or "positional_embedding";
    }

    private static int BlockIndex(string name, string prefix)
    {
        int start = prefix.Length, end = name.IndexOf('.', start);
        return int.Parse(name.AsSpan(start, end - start), System.Globalization.CultureInfo.InvariantCulture);
    }
}
