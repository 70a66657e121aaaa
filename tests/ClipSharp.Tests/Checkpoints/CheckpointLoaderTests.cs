using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static ClipSharp.Tests.Checkpoints.TestUtil;

namespace ClipSharp.Tests.Checkpoints;

public class CheckpointLoaderTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Theory]
    [InlineData("vit_small.safetensors", CheckpointFormat.Safetensors, 62)]
    [InlineData("rn_small.safetensors", CheckpointFormat.Safetensors, 0)]
    [InlineData("rn_small.pt", CheckpointFormat.TorchZip, 0)]
    [InlineData("vit_small.jit.pt", CheckpointFormat.TorchScript, 62)]
    public void DetectsFormatFromContent(string file, CheckpointFormat format, int count)
    {
        using var dir = new TempDir();
        // Detection must not rely on the extension.
        var copy = dir.File("weights.bin");
        File.Copy(Golden.Path("models", file), copy);
        using var ck = CheckpointLoader.Load(copy);
        Assert.Equal(format, ck.Format);
        if (count > 0) Assert.Equal(count, ck.State.Count);
        Assert.All(ck.State, kv => Assert.True(kv.Value.dtype is ScalarType.Float32 or ScalarType.Int64));
        CheckpointLoader.ValidateClipKeys(ck.State);
    }

    public static TheoryData<string> GoldenModelFiles => new()
    {
        "vit_small.safetensors", "rn_small.safetensors", "rn_small.pt", "vit_small.jit.pt",
        "vit_small.io.safetensors", "rn_small.io.safetensors",
    };

    [Theory]
    [MemberData(nameof(GoldenModelFiles))]
    public void RefusesTruncatedCopiesNamingTheFile(string file)
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Golden.Path("models", file));
        foreach (var fraction in new[] { 0.0, 0.001, 0.5, 0.999 })
        {
            int len = Math.Max(1, (int)(bytes.Length * fraction));
            if (len >= bytes.Length) len = bytes.Length - 1;
            var path = dir.File($"cut{len}-{file}");
            File.WriteAllBytes(path, bytes[..len]);
            var e = Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(path));
            Assert.Contains(path, e.Message);
        }
        // Even one byte short is caught.
        var last = dir.File("minus1-" + file);
        File.WriteAllBytes(last, bytes[..^1]);
        Assert.Contains(last, Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(last)).Message);
    }

    [Fact]
    public void RefusesForeignSafetensorsListingMissingKeys()
    {
        // The io file is a well-formed safetensors file without CLIP weights.
        var path = Golden.Path("models", "vit_small.io.safetensors");
        var e = Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not a CLIP checkpoint", e.Message);
        Assert.Contains("token_embedding.weight", e.Message);
        Assert.Contains("visual.proj", e.Message);
    }

    [Fact]
    public void RefusesLegacyPickleWithConversionHint()
    {
        using var dir = new TempDir();
        var path = dir.File("old.pt");
        // What torch.save(_use_new_zipfile_serialization=False) starts with: a protocol-2 pickle of the magic number.
        File.WriteAllBytes(path, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
        var e = Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("old-format", e.Message);
        Assert.Contains("torch.save", e.Message);
    }

    [Fact]
    public void RefusesUnknownAndMissingFiles()
    {
        using var dir = new TempDir();
        var path = dir.File("notes.txt");
        File.WriteAllText(path, "hello, this is not a checkpoint at all");
        Assert.Contains(path, Assert.Throws<ClipSharpException>(() => CheckpointLoader.Load(path)).Message);
        Assert.Throws<FileNotFoundException>(() => CheckpointLoader.Load(dir.File("absent.pt")));
    }

    [Fact]
    public void ValidateClipKeysListsWhatIsMissing()
    {
        using var sd = SafeTensors.Load(Golden.Path("models", "rn_small.safetensors"));
        CheckpointLoader.ValidateClipKeys(sd);
        sd.Remove("ln_final.weight");
        sd.Remove("visual.attnpool.c_proj.weight");
        var e = Assert.Throws<ClipSharpException>(() => CheckpointLoader.ValidateClipKeys(sd, "x.safetensors"));
        Assert.Contains("ln_final.weight", e.Message);
        Assert.Contains("visual.attnpool.c_proj.weight", e.Message);
        Assert.Contains("x.safetensors", e.Message);
    }

    /// <summary>Every golden checkpoint format loads twice to the same keys (load times go to the test log, not to an
    /// assertion: speed is measured by benchmarks). Written to the test output, never to Console: the CLI tests capture
    /// Console while other tests run in parallel.</summary>
    [Fact]
    public void GoldenCheckpointsLoadRepeatably()
    {
        foreach (var f in new[] { "vit_small.safetensors", "rn_small.safetensors", "rn_small.pt", "vit_small.jit.pt" })
        {
            var cold = System.Diagnostics.Stopwatch.StartNew();
            string[] first;
            using (var c = CheckpointLoader.Load(Golden.Path("models", f))) first = [.. c.State.Keys.Order()];
            cold.Stop();
            var warm = System.Diagnostics.Stopwatch.StartNew();
            using var ck = CheckpointLoader.Load(Golden.Path("models", f));
            warm.Stop();
            output.WriteLine($"load {f}: cold {cold.Elapsed.TotalMilliseconds:F1} ms, warm {warm.Elapsed.TotalMilliseconds:F1} ms, {ck.State.Count} tensors");
            Assert.Equal(first, ck.State.Keys.Order());
        }
    }
}
