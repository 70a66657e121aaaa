using ClipSharp.Checkpoints;
using ClipSharp.Tests.Modeling;

namespace ClipSharp.Tests;

/// <summary>The issue-2 commands run in-process through the real command tree.</summary>
[Collection("console")]
public class CliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    static string Vocab => Golden.Path("bpe_simple_vocab_16e6.txt.gz");

    [Fact]
    public void EncodeFromGoldenInputsReproducesReferenceOutputs()
    {
        var dir = Directory.CreateTempSubdirectory("clip-cli-");
        var output = Path.Combine(dir.FullName, "out.safetensors");
        var io = Golden.Path("models", "vit_small.io.safetensors");
        // The golden io file holds both inputs under their standard names.
        var (code, _, err) = Run("encode", "--model", Golden.Path("models", "vit_small.safetensors"),
            "--pixel-values", io, "--input-ids", io, "--output", output);
        Assert.True(code == 0, err);
        var expected = GoldenTensors.Load(io);
        using var actual = SafeTensors.Load(output);
        TensorAssert.Relative(actual["image_embeds"], expected["image_embeds"], 1e-5, "image_embeds");
        TensorAssert.Relative(actual["text_embeds"], expected["text_embeds"], 1e-5, "text_embeds");
        TensorAssert.Absolute(actual["logits_per_image"], expected["logits_per_image"], 1e-3, "logits_per_image");
        foreach (var t in expected.Values) t.Dispose();
    }

    [Fact]
    public void PreprocessWritesReferenceTensorsNamedByFile()
    {
        var dir = Directory.CreateTempSubdirectory("clip-cli-");
        var output = Path.Combine(dir.FullName, "px.safetensors");
        var (code, _, err) = Run("preprocess", "--size", "64", Golden.Path("preprocess", "portrait.png"), Golden.Path("preprocess", "gray.png"), "--output", output);
        Assert.True(code == 0, err);
        using var actual = SafeTensors.Load(output);
        var expected = GoldenTensors.Load(Golden.Path("preprocess", "expected.safetensors"));
        Assert.Equal(["portrait.png", "gray.png"], actual.Keys);
        TensorAssert.Absolute(actual["portrait.png"], expected["portrait.png@64"], 1e-6, "portrait.png@64");
        TensorAssert.Absolute(actual["gray.png"], expected["gray.png@64"], 1e-6, "gray.png@64");
        foreach (var t in expected.Values) t.Dispose();
    }

    [Fact]
    public void TokenizePrintsJsonIdsAndRefusesOverlongTextWithoutTruncate()
    {
        var (code, stdout, _) = Run("tokenize", "--vocab", Vocab, "a photo of a tench.");
        Assert.Equal(0, code);
        Assert.StartsWith("[[49406,320,1125,539,320,", stdout.Trim());
        var longText = string.Join(" ", Enumerable.Repeat("word", 100));
        var (code2, _, err2) = Run("tokenize", "--vocab", Vocab, longText);
        Assert.NotEqual(0, code2);
        Assert.Contains("too long", err2);
        var (code3, stdout3, _) = Run("tokenize", "--vocab", Vocab, "--truncate", longText);
        Assert.Equal(0, code3);
        Assert.Contains("49407]]", stdout3);
    }

    [Fact]
    public void InfoAndSimilarityWork()
    {
        var (code, stdout, err) = Run("info", Golden.Path("models", "rn_small.pt"));
        Assert.True(code == 0, err);
        Assert.Contains("TorchZip", stdout);
        Assert.Contains("4,600,601", stdout);
        var (code2, stdout2, err2) = Run("similarity", "--model", Golden.Path("models", "vit_small.jit.pt"), "--vocab", Vocab,
            Golden.Path("preprocess", "landscape.jpg"), "a diagram", "a dog", "a cat");
        Assert.True(code2 == 0, err2);
        Assert.Contains("a diagram", stdout2);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        var dir = Directory.CreateTempSubdirectory("clip-cli-");
        var bad = Path.Combine(dir.FullName, "bad.safetensors");
        File.WriteAllBytes(bad, [1, 2, 3]);
        var (code, _, err) = Run("info", bad);
        Assert.NotEqual(0, code);
        Assert.Contains("bad.safetensors", err);
        var (code2, _, err2) = Run("encode", "--model", Golden.Path("models", "vit_small.safetensors"), "--images", Path.Combine(dir.FullName, "missing.png"), "--output", Path.Combine(dir.FullName, "o.safetensors"));
        Assert.NotEqual(0, code2);
        Assert.Contains("missing.png", err2);
    }
}

[Collection("console")]
public class ConvertCliTests
{
    [Fact]
    public void ConvertToBothLayoutsAndBackGivesIdenticalOutputs()
    {
        var dir = Directory.CreateTempSubdirectory("clip-convert-").FullName;
        var src = Golden.Path("models", "rn_small.pt");
        Assert.Equal(0, ClipSharp.Cli.Program.Main(["convert", src, "--output", Path.Combine(dir, "rn.safetensors")]));
        using var a = ClipSharp.Modeling.ClipModel.Load(src);
        using var b = ClipSharp.Modeling.ClipModel.Load(Path.Combine(dir, "rn.safetensors"));
        Assert.Equal(a.Config, b.Config);
        foreach (var (key, t) in a.state_dict()) Assert.True(t.eq(b.state_dict()[key]).all().item<bool>(), key);

        var vit = Golden.Path("models", "vit_small.safetensors");
        Assert.Equal(0, ClipSharp.Cli.Program.Main(["convert", vit, "--layout", "hf", "--output", Path.Combine(dir, "hf")]));
        using var c = ClipSharp.Modeling.ClipModel.Load(vit);
        using var d = ClipSharp.Modeling.ClipModel.Load(Path.Combine(dir, "hf"));
        Assert.Equal(c.Config, d.Config);
        foreach (var (key, t) in c.state_dict()) Assert.True(t.eq(d.state_dict()[key]).all().item<bool>(), key);
    }
}
