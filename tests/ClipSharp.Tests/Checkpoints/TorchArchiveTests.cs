using System.Text;
using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static ClipSharp.Tests.Checkpoints.TestUtil;

namespace ClipSharp.Tests.Checkpoints;

public class TorchArchiveTests
{
    [Fact]
    public void RnSmallPtIsBitIdenticalToSafetensorsInStateDictOrder()
    {
        using var pt = TorchArchive.Load(Golden.Path("models", "rn_small.pt"), out var info);
        using var st = SafeTensors.Load(Golden.Path("models", "rn_small.safetensors"));
        Assert.False(info.IsTorchScript);
        Assert.Equal("rn_small/", info.RecordPrefix);
        var order = KeyList(Golden.Path("models", "rn_small.config.json"), "state_dict_order");
        Assert.Equal(order.Select(o => o.Key), pt.Keys);
        Assert.Equal(st.Keys.Order(), pt.Keys.Order());
        foreach (var (k, t) in st) AssertBitIdentical(t, pt[k], k);
        Assert.Equal(ScalarType.Int64, pt["visual.bn1.num_batches_tracked"].dtype);
    }

    [Fact]
    public void TorchScriptArchiveFlattensModuleTreeIntoStateDictKeys()
    {
        using var sd = TorchArchive.Load(Golden.Path("models", "vit_small.jit.pt"), out var info);
        Assert.True(info.IsTorchScript);
        Assert.Equal(65, sd.Count);
        Assert.Equal(35, sd.Count(kv => kv.Value.dtype == ScalarType.Float16));
        Assert.Contains("visual.transformer.resblocks.0.attn.in_proj_weight", sd.Keys);
        Assert.Equal(64L, sd["input_resolution"].item<long>());
        Assert.Equal(77L, sd["context_length"].item<long>());
        Assert.Equal(49408L, sd["vocab_size"].item<long>());
    }

    [Fact]
    public void LoaderUpcastsJitWeightsToExactlyTheFloat16RoundedSafetensors()
    {
        using var jit = CheckpointLoader.Load(Golden.Path("models", "vit_small.jit.pt"));
        using var st = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        using var raw = TorchArchive.Load(Golden.Path("models", "vit_small.jit.pt"));
        Assert.Equal(CheckpointFormat.TorchScript, jit.Format);
        Assert.Equal(st.Keys.Order(), jit.State.Keys.Order());
        Assert.Equal(64L, jit.ScalarBuffers["input_resolution"]);
        Assert.Equal(77L, jit.ScalarBuffers["context_length"]);
        Assert.Equal(49408L, jit.ScalarBuffers["vocab_size"]);
        int fp16 = 0;
        foreach (var (k, t) in st)
        {
            Assert.Equal(ScalarType.Float32, jit.State[k].dtype);
            if (raw[k].dtype == ScalarType.Float16)
            {
                fp16++;
                using var rounded = t.to_type(ScalarType.Float16).to_type(ScalarType.Float32);
                AssertBitIdentical(rounded, jit.State[k], k);
            }
            else AssertBitIdentical(t, jit.State[k], k);
        }
        Assert.Equal(35, fp16);
    }

    static byte[] Floats(params float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void HonoursOffsetStrideOpenClipWrapperAndModulePrefix()
    {
        using var dir = new TempDir();
        // storage "0": 12 floats 0..11; "w" = view with offset 2, size [2,3], stride [1,2] (transposed, non-contiguous).
        var p = new PickleWriter().EmptyDict()
            .Mark()
            .Str("state_dict").EmptyDict().Mark()
                .Str("module.w").Tensor("FloatStorage", "0", 12, 2, [2, 3], [1, 2])
                .Str("module.n").Tensor("LongStorage", "1", 1, 0, [], [])
                .Str("module.note").Str("not a tensor")
            .SetItems()
            .Str("epoch").Int(7)
            .Str("name").Str("run-1")
            .SetItems().Stop().ToArray();
        var path = dir.File("openclip.pt");
        WriteTorchZip(path, p, new Dictionary<string, byte[]>
        {
            ["0"] = Floats(Enumerable.Range(0, 12).Select(i => (float)i).ToArray()),
            ["1"] = BitConverter.GetBytes(5L),
        });
        using var sd = TorchArchive.Load(path, out var info);
        Assert.Equal(["w", "n"], sd.Keys);
        Assert.Equal([2L, 3L], sd["w"].shape);
        Assert.True(sd["w"].is_contiguous());
        // w[i][j] = storage[2 + i*1 + j*2]
        Assert.Equal(new float[] { 2, 4, 6, 3, 5, 7 }, sd["w"].data<float>().ToArray());
        Assert.Equal(5L, sd["n"].item<long>());
        Assert.Equal("7", info.Extras["epoch"]);
        Assert.Equal("run-1", info.Extras["name"]);
        Assert.Contains(info.Notes, n => n.Contains("module."));
    }

    [Theory]
    [InlineData("os", "system")]
    [InlineData("builtins", "eval")]
    [InlineData("subprocess", "Popen")]
    [InlineData("torch", "load")]
    public void RefusesPicklesReferencingNonWhitelistedGlobals(string module, string name)
    {
        using var dir = new TempDir();
        var marker = dir.File("pwned");
        // The classic payload: os.system("touch <marker>") via GLOBAL + REDUCE.
        var p = new PickleWriter().Global(module, name).Mark().Str($"touch {marker}").Tuple().Reduce().Stop().ToArray();
        var path = dir.File("evil.pt");
        WriteTorchZip(path, p, new Dictionary<string, byte[]>());
        var e = Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(path));
        Assert.Contains($"{module}.{name}", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("refusing to load", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void RefusesStackGlobalAndWhitelistedClassesUsedAsFunctions()
    {
        using var dir = new TempDir();
        // STACK_GLOBAL (protocol 4 spelling) of posix.system.
        var p = new PickleWriter().Str("posix").Str("system").Op((byte)0x93).Mark().Str("id").Tuple().Reduce().Stop().ToArray();
        var path = dir.File("evil4.pt");
        WriteTorchZip(path, p, new Dictionary<string, byte[]>());
        var e = Assert.Throws<ClipSharpException>(() => TorchArchive.Load(path));
        Assert.Contains("posix.system", e.Message);

        // Calling a plain string (not a global) is refused too.
        p = new PickleWriter().Str("os.system").Mark().Str("id").Tuple().Reduce().Stop().ToArray();
        WriteTorchZip(path, p, new Dictionary<string, byte[]>());
        e = Assert.Throws<ClipSharpException>(() => TorchArchive.Load(path));
        Assert.Contains("refusing to load", e.Message);
    }

    [Fact]
    public void RefusesZipWithoutDataPklAndStorageSizeMismatch()
    {
        using var dir = new TempDir();
        var path = dir.File("nodata.pt");
        WriteTorchZip(path, [], new Dictionary<string, byte[]> { ["0"] = new byte[4] }, includeDataPkl: false);
        var e = Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("data.pkl", e.Message);

        var p = new PickleWriter().EmptyDict().Str("w").Tensor("FloatStorage", "0", 4, 0, [4], [1]).SetItem().Stop().ToArray();
        WriteTorchZip(path, p, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        e = Assert.Throws<ClipSharpException>(() => TorchArchive.Load(path));
        Assert.Contains("holds 8 bytes", e.Message);

        p = new PickleWriter().EmptyDict().Str("w").Tensor("FloatStorage", "0", 2, 1, [4], [1]).SetItem().Stop().ToArray();
        WriteTorchZip(path, p, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        e = Assert.Throws<ClipSharpException>(() => TorchArchive.Load(path));
        Assert.Contains("reaches element", e.Message);
    }
}
