using System.IO.Compression;
using System.Text;
using System.Text.Json;
using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Checkpoints;

/// <summary>Helpers shared by the checkpoint tests.</summary>
static class TestUtil
{
    public static byte[] Bytes(Tensor t)
    {
        using var c = t.contiguous();
        return TensorBytes.Span(c).ToArray();
    }

    public static void AssertBitIdentical(Tensor expected, Tensor actual, string key)
    {
        Assert.True(expected.dtype == actual.dtype, $"{key}: dtype {actual.dtype} != {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{key}: shape [{string.Join(",", actual.shape)}] != [{string.Join(",", expected.shape)}]");
        Assert.True(Bytes(expected).AsSpan().SequenceEqual(Bytes(actual)), $"{key}: values differ");
    }

    /// <summary>A fresh temporary folder, deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("clipsharp-ckpt-").FullName;
        public string File(string name) => System.IO.Path.Combine(Path, name);
        public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
    }

    /// <summary>(key, shape, dtype) in state_dict order from a golden config.json or state_dict_keys file.</summary>
    public static List<(string Key, long[] Shape, string DType)> KeyList(string jsonPath, string field)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
        var list = new List<(string, long[], string)>();
        foreach (var e in doc.RootElement.GetProperty(field).EnumerateArray())
            list.Add((e[0].GetString()!, e[1].EnumerateArray().Select(x => x.GetInt64()).ToArray(), e[2].GetString()!));
        return list;
    }

    /// <summary>Writes a torch-style zip: &lt;arch&gt;/data.pkl, &lt;arch&gt;/data/&lt;key&gt; records and a version record, stored uncompressed.</summary>
    public static void WriteTorchZip(string path, byte[] pickle, IReadOnlyDictionary<string, byte[]> records, string arch = "archive", bool includeDataPkl = true)
    {
        using var fs = System.IO.File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        void Add(string name, byte[] data)
        {
            var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(data);
        }
        if (includeDataPkl) Add($"{arch}/data.pkl", pickle);
        foreach (var (k, v) in records) Add($"{arch}/data/{k}", v);
        Add($"{arch}/version", Encoding.ASCII.GetBytes("3\n"));
    }
}

/// <summary>Emits pickle opcodes by hand (protocol 2), enough to write crafted checkpoints in tests.</summary>
sealed class PickleWriter
{
    readonly MemoryStream _ms = new();
    public PickleWriter() { _ms.WriteByte(0x80); _ms.WriteByte(2); }
    public PickleWriter Op(char c) { _ms.WriteByte((byte)c); return this; }
    public PickleWriter Op(byte b) { _ms.WriteByte(b); return this; }
    public PickleWriter Global(string module, string name) { Op('c'); Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n")); return this; }
    public PickleWriter Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op('X'); Raw(BitConverter.GetBytes(b.Length)); Raw(b);
        return this;
    }
    public PickleWriter Int(int v) { Op('J'); Raw(BitConverter.GetBytes(v)); return this; }
    public PickleWriter Mark() => Op('(');
    public PickleWriter Tuple() => Op('t');
    public PickleWriter Reduce() => Op('R');
    public PickleWriter EmptyDict() => Op('}');
    public PickleWriter EmptyTuple() => Op(')');
    public PickleWriter SetItem() => Op('s');
    public PickleWriter SetItems() => Op('u');
    public PickleWriter False() => Op((byte)0x89);
    public PickleWriter Stop() => Op('.');
    void Raw(byte[] b) => _ms.Write(b);
    public byte[] ToArray() => _ms.ToArray();

    /// <summary>Pushes torch._utils._rebuild_tensor_v2(storage(key), offset, size, stride, False, OrderedDict()).</summary>
    public PickleWriter Tensor(string storageType, string key, int numel, int offset, int[] size, int[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2");
        Mark();
        Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Tuple().Op('Q');
        Int(offset);
        Mark(); foreach (var s in size) Int(s); Tuple();
        Mark(); foreach (var s in stride) Int(s); Tuple();
        False();
        Global("collections", "OrderedDict").EmptyTuple().Reduce();
        Tuple();
        return Reduce();
    }
}
