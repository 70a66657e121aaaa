using System.Formats.Tar;
using ClipSharp.Tests.Imaging;

namespace ClipSharp.Tests.Evaluation;

/// <summary>Small generated datasets for the reader and evaluation tests.</summary>
internal static class TestData
{
    /// <summary>An RGB PNG of the given colour with a little deterministic noise.</summary>
    public static byte[] Png(byte r, byte g, byte b, int size = 24, int seed = 0)
    {
        var rnd = new Random(seed);
        var rows = new byte[size][];
        for (int y = 0; y < size; y++)
        {
            rows[y] = new byte[size * 3];
            for (int x = 0; x < size; x++)
            {
                rows[y][3 * x] = (byte)Math.Clamp(r + rnd.Next(-20, 21), 0, 255);
                rows[y][3 * x + 1] = (byte)Math.Clamp(g + rnd.Next(-20, 21), 0, 255);
                rows[y][3 * x + 2] = (byte)Math.Clamp(b + rnd.Next(-20, 21), 0, 255);
            }
        }
        return TestImageWriters.Png(size, size, 8, 2, rows);
    }

    public static readonly (string Name, byte R, byte G, byte B)[] Colours =
        [("red", 220, 30, 30), ("green", 30, 200, 40), ("blue", 30, 40, 220)];

    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("clipsharp-test-").FullName;
        public string this[string rel] => System.IO.Path.Combine(Path, rel);
        public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
    }

    /// <summary>root/{red,green,blue}/img{i}.png with <paramref name="perClass"/> images each; optionally one corrupt .jpg in "green".</summary>
    public static string ImageFolder(string root, int perClass = 3, bool corrupt = false, int seedOffset = 0)
    {
        Directory.CreateDirectory(root);
        for (int c = 0; c < Colours.Length; c++)
        {
            var (name, r, g, b) = Colours[c];
            var dir = System.IO.Path.Combine(root, name);
            Directory.CreateDirectory(dir);
            for (int i = 0; i < perClass; i++)
                File.WriteAllBytes(System.IO.Path.Combine(dir, $"img{i}.png"), Png(r, g, b, seed: seedOffset + 100 * c + i));
        }
        if (corrupt) File.WriteAllBytes(System.IO.Path.Combine(root, "green", "broken.jpg"), [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        File.WriteAllText(System.IO.Path.Combine(root, "red", "notes.txt"), "not an image");
        return root;
    }

    /// <summary>A tar shard with members (name, bytes) in the given order.</summary>
    public static void Tar(string path, IEnumerable<(string Name, byte[] Data)> members)
    {
        using var fs = File.Create(path);
        using var w = new TarWriter(fs, TarEntryFormat.Pax);
        foreach (var (name, data) in members)
        {
            var e = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) };
            w.WriteEntry(e);
        }
    }

    public static byte[] Utf8(string s) => System.Text.Encoding.UTF8.GetBytes(s);
}
