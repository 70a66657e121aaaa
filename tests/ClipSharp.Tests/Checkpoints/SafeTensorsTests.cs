using System.Buffers.Binary;
using System.Text;
using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static ClipSharp.Tests.Checkpoints.TestUtil;

namespace ClipSharp.Tests.Checkpoints;

public class SafeTensorsTests
{
    [Fact]
    public void LoadsGoldenVitSmallWithShapesFromConfig()
    {
        using var sd = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"), out var meta);
        var expected = KeyList(Golden.Path("models", "vit_small.config.json"), "state_dict_order");
        Assert.Equal(expected.Count, sd.Count);
        Assert.Equal(62, sd.Count);
        Assert.NotEmpty(meta);
        foreach (var (key, shape, _) in expected)
        {
            Assert.Equal(shape, sd[key].shape);
            Assert.Equal(ScalarType.Float32, sd[key].dtype);
        }
        Assert.Equal((float)Math.Log(100), sd["logit_scale"].item<float>(), 6);
    }

    [Fact]
    public void LoadsGoldenRnSmallWithInt64Counters()
    {
        using var sd = SafeTensors.Load(Golden.Path("models", "rn_small.safetensors"));
        var counters = sd.Keys.Where(k => k.EndsWith("num_batches_tracked")).ToList();
        Assert.NotEmpty(counters);
        foreach (var k in counters)
        {
            Assert.Equal(ScalarType.Int64, sd[k].dtype);
            Assert.Equal(1L, sd[k].item<long>());
        }
    }

    public static TheoryData<ScalarType> AllDTypes => new()
    {
        ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Float64, ScalarType.Int64,
        ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool,
    };

    static Tensor Sample(ScalarType dtype, long[] shape)
    {
        using var scope = NewDisposeScope();
        using Scalar fifty = 50.0.ToScalar(), zero = 0.0.ToScalar();
        var r = randn(shape, ScalarType.Float64).mul(fifty);
        Tensor t = dtype switch
        {
            ScalarType.Bool => r.gt(zero),
            ScalarType.Byte => r.abs().to_type(ScalarType.Byte),
            _ => r.to_type(dtype),
        };
        return t.MoveToOuterDisposeScope();
    }

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void SaveLoadRoundTripIsBitIdentical(ScalarType dtype)
    {
        using var dir = new TempDir();
        using var sd = new StateDict();
        sd.Add("scalar", Sample(dtype, []));
        sd.Add("matrix", Sample(dtype, [5, 7]));
        sd.Add("empty", Sample(dtype, [0, 3]));
        sd.Add("wide.f64", Sample(ScalarType.Float64, [3]));
        sd.Add("tail.u8", Sample(ScalarType.Byte, [3]));
        var path = dir.File("x.safetensors");
        SafeTensors.Save(path, sd, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode" });

        using var back = SafeTensors.Load(path, out var meta);
        Assert.Equal(sd.Keys, back.Keys);
        foreach (var (k, t) in sd) AssertBitIdentical(t, back[k], k);
        Assert.Equal("ünïcode", meta["note"]);

        // Standard layout: header length multiple of 8, and every tensor aligned to its element size.
        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        var header = SafeTensors.ReadHeader(path);
        foreach (var e in header.Entries)
            Assert.Equal(0, e.Begin % TensorBytes.ElementSize(SafeTensors.ParseDType(e.DType)));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void GoldenFileRoundTripsThroughSave()
    {
        using var dir = new TempDir();
        using var sd = SafeTensors.Load(Golden.Path("models", "rn_small.safetensors"));
        var path = dir.File("rn.safetensors");
        SafeTensors.Save(path, sd);
        using var back = SafeTensors.Load(path);
        Assert.Equal(sd.Keys, back.Keys);
        foreach (var (k, t) in sd) AssertBitIdentical(t, back[k], k);
    }

    [Fact]
    public void SaveIsAtomicWhenWritingFailsMidway()
    {
        using var dir = new TempDir();
        var path = dir.File("model.safetensors");
        File.WriteAllText(path, "previous content");
        using var sd = new StateDict();
        sd.Add("a", ones(1000));
        sd.Add("b", ones(1000));
        SafeTensors.AfterTensorWritten = name => { if (name == "a") throw new IOException("simulated disk failure"); };
        try
        {
            Assert.Throws<IOException>(() => SafeTensors.Save(path, sd));
        }
        finally { SafeTensors.AfterTensorWritten = null; }
        Assert.Equal("previous content", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));

        // An unsupported dtype fails before anything is written.
        using var bad = new StateDict();
        bad.Add("c", complex(ones(2), ones(2)));
        Assert.Throws<NotSupportedException>(() => SafeTensors.Save(dir.File("other.safetensors"), bad));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    static string WriteRaw(TempDir dir, string json, int dataBytes, string name = "bad.safetensors")
    {
        var j = Encoding.UTF8.GetBytes(json);
        var path = dir.File(name);
        using var fs = File.Create(path);
        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)j.Length);
        fs.Write(len);
        fs.Write(j);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not well-formed JSON")]
    [InlineData("[1,2]", 0, "not a JSON object")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "gap before tensor 'a'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlaps")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "unexpected bytes follow")]
    [InlineData("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "not supported")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "invalid shape")]
    [InlineData("{\"__metadata__\":{\"x\":1}}", 0, "not a string")]
    public void StrictValidationNamesFileAndProblem(string json, int dataBytes, string expected)
    {
        using var dir = new TempDir();
        var path = WriteRaw(dir, json, dataBytes);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RejectsImplausibleHeaderLength()
    {
        using var dir = new TempDir();
        var path = dir.File("huge.safetensors");
        var b = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(b, 1UL << 40);
        File.WriteAllBytes(path, b);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("header length", e.Message);

        BinaryPrimitives.WriteUInt64LittleEndian(b, 1000);
        File.WriteAllBytes(path, b);
        e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path));
        Assert.Contains("runs past the end", e.Message);
    }
}
