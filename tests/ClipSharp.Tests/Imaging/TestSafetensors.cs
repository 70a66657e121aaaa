using System.Buffers.Binary;
using System.Text.Json;

namespace ClipSharp.Tests.Imaging;

/// <summary>
/// Minimal safetensors reader for the imaging tests only (8-byte LE header length, JSON header, raw bytes).
/// To be replaced by the library reader once it exists.
/// </summary>
internal sealed class TestSafetensors
{
    internal sealed record Entry(string DType, long[] Shape, long Begin, long End);

    readonly byte[] bytes;
    readonly long dataStart;

    public Dictionary<string, Entry> Entries { get; } = new(StringComparer.Ordinal);

    TestSafetensors(byte[] bytes)
    {
        this.bytes = bytes;
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        dataStart = 8 + n;
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var off = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Entries[p.Name] = new Entry(p.Value.GetProperty("dtype").GetString()!, shape, off[0], off[1]);
        }
    }

    static readonly Dictionary<string, TestSafetensors> Cache = new();

    public static TestSafetensors Open(string path)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(path, out var f))
                Cache[path] = f = new TestSafetensors(File.ReadAllBytes(path));
            return f;
        }
    }

    public Entry Get(string name) => Entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"No tensor '{name}'.");

    public byte[] U8(string name)
    {
        var e = Get(name);
        Assert.Equal("U8", e.DType);
        return bytes.AsSpan((int)(dataStart + e.Begin), (int)(e.End - e.Begin)).ToArray();
    }

    public float[] F32(string name)
    {
        var e = Get(name);
        Assert.Equal("F32", e.DType);
        var span = bytes.AsSpan((int)(dataStart + e.Begin), (int)(e.End - e.Begin));
        var o = new float[span.Length / 4];
        for (int i = 0; i < o.Length; i++) o[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(4 * i)..]);
        return o;
    }
}
