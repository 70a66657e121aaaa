using ClipSharp.Modeling;

namespace ClipSharp.Training;

/// <summary>
/// Named architectures for training configs: small configurations sized for CPU training, plus every released
/// CLIP shape from <see cref="NamedArchitectures"/>.
/// </summary>
internal static class ModelPresets
{
    private static readonly Dictionary<string, ClipConfig> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        // CPU-sized: a ViT with patch 8 on 64-px images (64 patches + class token) and a narrow text tower.
        ["cpu-vit-tiny"] = new ClipConfig(256, 64, [6], 256, 8, 77, 49408, 256, 4, 6) { VisionHeadsOverride = 4 },
        // Smaller still, for a quick demo on two cores.
        ["cpu-vit-mini"] = new ClipConfig(128, 64, [4], 128, 8, 77, 49408, 128, 2, 4) { VisionHeadsOverride = 2 },
        // For unit tests: seconds per hundred steps.
        ["cpu-vit-micro"] = new ClipConfig(32, 32, [1], 32, 8, 77, 49408, 32, 2, 1) { VisionHeadsOverride = 2 },
    };

    /// <summary>All preset names.</summary>
    public static IReadOnlyList<string> Names => [.. Presets.Keys, .. NamedArchitectures.Names];

    /// <summary>The architecture called <paramref name="name"/> (case-insensitive; "ViT-B-32" also accepted).</summary>
    /// <exception cref="ClipSharpException">Unknown name.</exception>
    public static ClipConfig Get(string name)
    {
        if (Presets.TryGetValue(name, out var c)) return c with { VisionLayers = (int[])c.VisionLayers.Clone() };
        if (NamedArchitectures.TryGet(name, out var released)) return released;
        throw new ClipSharpException($"unknown model '{name}'; known: {string.Join(", ", Names)}");
    }
}
