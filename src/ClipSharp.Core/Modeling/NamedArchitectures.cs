namespace ClipSharp.Modeling;

/// <summary>
/// Hyperparameters of OpenAI's released CLIP checkpoints, by their published names (the values the reference
/// <c>build_model</c> derives from those checkpoints). Names are case-insensitive and accept '-' for '/'
/// (<c>ViT-B-32</c> = <c>ViT-B/32</c>, <c>ViT-L-14-336</c> = <c>ViT-L/14@336px</c>).
/// </summary>
public static class NamedArchitectures
{
    const int Ctx = 77, Vocab = 49408;

    static readonly (string Name, ClipConfig Config)[] All =
    [
        ("RN50", new ClipConfig(1024, 224, [3, 4, 6, 3], 64, null, Ctx, Vocab, 512, 8, 12)),
        ("RN101", new ClipConfig(512, 224, [3, 4, 23, 3], 64, null, Ctx, Vocab, 512, 8, 12)),
        ("RN50x4", new ClipConfig(640, 288, [4, 6, 10, 6], 80, null, Ctx, Vocab, 640, 10, 12)),
        ("RN50x16", new ClipConfig(768, 384, [6, 8, 18, 8], 96, null, Ctx, Vocab, 768, 12, 12)),
        ("RN50x64", new ClipConfig(1024, 448, [3, 15, 36, 10], 128, null, Ctx, Vocab, 1024, 16, 12)),
        ("ViT-B/32", new ClipConfig(512, 224, [12], 768, 32, Ctx, Vocab, 512, 8, 12)),
        ("ViT-B/16", new ClipConfig(512, 224, [12], 768, 16, Ctx, Vocab, 512, 8, 12)),
        ("ViT-L/14", new ClipConfig(768, 224, [24], 1024, 14, Ctx, Vocab, 768, 12, 12)),
        ("ViT-L/14@336px", new ClipConfig(768, 336, [24], 1024, 14, Ctx, Vocab, 768, 12, 12)),
    ];

    /// <summary>The canonical names, in OpenAI's order.</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(a => a.Name).ToArray();

    /// <summary>True when <paramref name="name"/> is a known architecture (any accepted spelling).</summary>
    public static bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ClipConfig? config)
    {
        string key = Normalize(name);
        foreach (var (n, c) in All)
        {
            if (Normalize(n) == key)
            {
                // A fresh copy so callers cannot mutate the shared layer array.
                config = c with { VisionLayers = (int[])c.VisionLayers.Clone() };
                return true;
            }
        }
        config = null;
        return false;
    }

    /// <summary>The hyperparameters of a released architecture.</summary>
    /// <exception cref="KeyNotFoundException">Unknown name; the message lists the known ones.</exception>
    public static ClipConfig Get(string name) =>
        TryGet(name, out var c) ? c : throw new KeyNotFoundException($"unknown CLIP architecture '{name}'; known: {string.Join(", ", Names)}");

    static string Normalize(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var s = name.Trim().ToUpperInvariant().Replace('/', '-').Replace('_', '-');
        if (s.EndsWith(".PT", StringComparison.Ordinal)) s = s[..^3];
        s = s.Replace("@336PX", "-336").Replace("-336PX", "-336");
        return s;
    }
}
