using ClipSharp.Checkpoints;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Imaging;

/// <summary>Golden safetensors files for the imaging tests, read once through the library reader and cached.</summary>
internal sealed class TestSafetensors
{
    internal sealed record Entry(string DType, long[] Shape);

    readonly StateDict tensors;

    public Dictionary<string, Entry> Entries { get; } = new(StringComparer.Ordinal);

    TestSafetensors(string path)
    {
        tensors = SafeTensors.Load(path);
        foreach (var key in tensors.Keys)
        {
            var t = tensors[key];
            Entries[key] = new Entry(t.dtype switch { ScalarType.Byte => "U8", ScalarType.Float32 => "F32", ScalarType.Int64 => "I64", var d => d.ToString() }, t.shape);
        }
    }

    static readonly Dictionary<string, TestSafetensors> Cache = new();

    public static TestSafetensors Open(string path)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(path, out var f)) Cache[path] = f = new TestSafetensors(path);
            return f;
        }
    }

    public Entry Get(string name) => Entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"No tensor '{name}'.");

    public byte[] U8(string name)
    {
        Assert.Equal("U8", Get(name).DType);
        lock (tensors) return tensors[name].data<byte>().ToArray();
    }

    public float[] F32(string name)
    {
        Assert.Equal("F32", Get(name).DType);
        lock (tensors) return tensors[name].data<float>().ToArray();
    }
}
