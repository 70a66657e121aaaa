using ClipSharp.Modeling;

namespace ClipSharp.Training;

/// <summary>
/// Named architectures for training configs: the released CLIP shapes (facts from the paper's tables) and
/// small configurations sized for CPU training.
/// </summary>
public static class ModelPresets
{
    private static readonly Dictionary<string, ClipConfig> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        // CPU-sized: a ViT with patch 8 on 64-px images (64 patches + class token) and a narrow text tower.
        ["cpu-vit-tiny"] = new ClipConfig(256, 64, [6], 256, 8, 77, 49408, 256, 4, 6) { VisionHeadsOverride = 4 },
        // Smaller still, for a quick demo on two cores.
        ["cpu-vit-mini"] = new ClipConfig(128, 64, [4], 128, 8, 77, 49408, 128, 2, 4) { VisionHeadsOverride = 2 },
        // For unit tests: seconds per hundred steps.
        ["cpu-vit-micro"] = new ClipConfig(32, 32, [1], 32, 8, 77, 49408, 32, 2, 1) { VisionHeadsOverride = 2 },
        ["RN50"] = new ClipConfig(1024, 224, [3, 4, 6, 3], 64, null, 77, 49408, 512, 8, 12),
        ["RN101"] = new ClipConfig(512, 224, [3, 4, 23, 3], 64, null, 77, 49408, 512, 8, 12),
        ["RN50x4"] = new ClipConfig(640, 288, [4, 6, 10, 6], 80, null, 77, 49408, 640, 10, 12),
        ["RN50x16"] = new ClipConfig(768, 384, [6, 8, 18, 8], 96, null, 77, 49408, 768, 12, 12),
        ["RN50x64"] = new ClipConfig(1024, 448, [3, 15, 36, 10], 128, null, 77, 49408, 1024, 16, 12),
        ["ViT-B/32"] = new ClipConfig(512, 224, [12], 768, 32, 77, 49408, 512, 8, 12),
        ["ViT-B/16"] = new ClipConfig(512, 224, [12], 768, 16, 77, 49408, 512, 8, 12),
        ["ViT-L/14"] = new ClipConfig(768, 224, [24], 1024, 14, 77, 49408, 768, 12, 12),
        ["ViT-L/14@336px"] = new ClipConfig(768, 336, [24], 1024, 14, 77, 49408, 768, 12, 12),
    };

    /// <summary>All preset names.</summary>
    public static IReadOnlyCollection<string> Names => Presets.Keys;

    /// <summary>The architecture called <paramref name="name"/> (case-insensitive; "ViT-B-32" also accepted).</summary>
    /// <exception cref="InvalidDataException">Unknown name.</exception>
    public static ClipConfig Get(string name)
    {
        if (Presets.TryGetValue(name, out var c)) return c;
        var alt = Presets.Keys.FirstOrDefault(k => string.Equals(k.Replace('/', '-'), name.Replace('/', '-'), StringComparison.OrdinalIgnoreCase));
        if (alt is not null) return Presets[alt];
        throw new InvalidDataException($"unknown model '{name}'; known: {string.Join(", ", Presets.Keys)}");
    }
}
