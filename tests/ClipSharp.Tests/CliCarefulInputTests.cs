using System.Globalization;
using System.Text.Json;

namespace ClipSharp.Tests;

/// <summary>Issue 12's careless inputs that used to give a wrong or surprising answer instead of an error.</summary>
[Collection("console")]
public class CliCarefulInputTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    static string Model => Golden.Path("models", "vit_small.safetensors");
    static string Cat => Golden.Path("preprocess", "landscape.jpg");
    static string Dog => Golden.Path("preprocess", "portrait.png");

    static void AssertOneLineError(int code, string err, params string[] mentions)
    {
        Assert.InRange(code, 1, 2);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{err}");
        Assert.StartsWith("clip: error: ", lines[0]);
        Assert.DoesNotContain("   at ", err);
        foreach (var m in mentions) Assert.Contains(m, lines[0]);
    }

    [Fact]
    public void SimilarityJsonIsAnOptionNotALabel()
    {
        var (code, stdout, err) = Run("similarity", "-m", Model, Cat, "a cat", "a dog", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var probs = doc.RootElement.GetProperty("images")[0].GetProperty("probs");
        Assert.Equal(["a cat", "a dog"], probs.EnumerateArray().Select(p => p.GetProperty("text").GetString()!));
        Assert.Equal(1.0, probs.EnumerateArray().Sum(p => p.GetProperty("prob").GetDouble()), 4);
    }

    [Fact]
    public void SimilarityRefusesOptionLookingTextsUnlessAfterDoubleDash()
    {
        var (code, _, err) = Run("similarity", "-m", Model, Cat, "a cat", "--jsn");
        AssertOneLineError(code, err, "'--jsn'", "--");
        var (code2, stdout2, err2) = Run("similarity", "-m", Model, Cat, "a cat", "--", "--jsn");
        Assert.True(code2 == 0, err2);
        Assert.Contains("--jsn", stdout2);
    }

    [Fact]
    public void SimilarityTakesSeveralImagesAndNeverRanksAFileAsAText()
    {
        var (code, stdout, err) = Run("similarity", "-m", Model, Cat, Dog, "a cat", "a dog");
        Assert.True(code == 0, err);
        Assert.Contains("Label probs for landscape.jpg:", stdout);
        Assert.Contains("Label probs for portrait.png:", stdout);
        Assert.DoesNotContain(Dog, stdout);
        var (code2, _, err2) = Run("similarity", "-m", Model, Cat, "missing-dog.png", "a cat");
        AssertOneLineError(code2, err2, "missing-dog.png");
        var (code3, _, err3) = Run("similarity", "-m", Model, Cat);
        AssertOneLineError(code3, err3, "text");
    }

    [Fact]
    public void SimilarityAndPredictGiveTheSameProbabilities()
    {
        var (code, stdout, err) = Run("similarity", "-m", Model, Cat, "a cat", "a dog", "a diagram", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var sim = doc.RootElement.GetProperty("images")[0].GetProperty("probs").EnumerateArray()
            .ToDictionary(p => p.GetProperty("text").GetString()!, p => p.GetProperty("prob").GetDouble());

        var dir = Directory.CreateTempSubdirectory("clip-careful-");
        var labels = Path.Combine(dir.FullName, "labels.txt");
        File.WriteAllLines(labels, ["a cat", "a dog", "a diagram"]);
        var csv = Path.Combine(dir.FullName, "p.csv");
        // The template "{}" leaves each label as it is, the same texts similarity embeds.
        var (pcode, _, perr) = Run("predict", Cat, "--classnames", labels, "--templates", "{}", "-m", Model, "--csv", csv, "-k", "3", "-q");
        Assert.True(pcode == 0, perr);
        var row = File.ReadAllLines(csv)[1].Split(',');
        Assert.Equal(1 + 2 * 3 + 1, row.Length); // image, three label/prob pairs, an empty error column
        for (int j = 1; j + 1 < row.Length; j += 2)
            Assert.Equal(sim[row[j]], double.Parse(row[j + 1], CultureInfo.InvariantCulture), 5);
    }

    [Fact]
    public void SearchRefusesEmptyQueriesTemplatesWithoutPlaceholderAndUnknownOptions()
    {
        var (c1, _, e1) = Run("search", "", "-i", "whatever.index.safetensors");
        AssertOneLineError(c1, e1, "empty");
        var (c2, _, e2) = Run("search", "cat", "-i", "whatever.index.safetensors", "--template", "emoji");
        AssertOneLineError(c2, e2, "--template", "{}");
        var (c3, _, e3) = Run("search", "cat", "--frob", "-i", "whatever.index.safetensors");
        AssertOneLineError(c3, e3, "'--frob'");
    }

    [Fact]
    public void UsageErrorsAreOneLineNotTheWholeHelp()
    {
        var (code, stdout, err) = Run("tokenize");
        AssertOneLineError(code, err, "clip tokenize --help");
        Assert.Equal(2, code);
        Assert.DoesNotContain("Usage:", stdout + err);
    }

    [Fact]
    public void PlotNamesAMissingFolderAsSuch()
    {
        var (code, _, err) = Run("plot", "no-such-run-folder/");
        AssertOneLineError(code, err, "run folder not found", "no-such-run-folder");
    }

    [Fact]
    public void ArgumentErrorsDoNotNameOurParameters()
    {
        var longText = string.Join(' ', Enumerable.Repeat("word", 100));
        var (code, _, err) = Run("tokenize", longText);
        AssertOneLineError(code, err);
        Assert.DoesNotContain("(Parameter '", err);
    }

    [Fact]
    public void InfoAndLoadingCommandsRefuseAConfigThatDoesNotFitTheWeights()
    {
        var rnConfig = Golden.Path("models", "rn_small.config.json");
        var (code, stdout, err) = Run("info", Model, "--config", rnConfig);
        AssertOneLineError(code, err, "--config", "rn_small.config.json", "image tower", "ModifiedResNet", "ViT");
        Assert.Equal(1, code);
        Assert.DoesNotContain("ModifiedResNet: stages", stdout);

        // Same family, one field off: the field is named, not a list of tensor shapes.
        var dir = Directory.CreateTempSubdirectory("clip-careful-");
        var deeper = Path.Combine(dir.FullName, "deeper.json");
        File.WriteAllText(deeper, File.ReadAllText(Golden.Path("models", "vit_small.config.json")).Replace("\"vision_layers\": 2", "\"vision_layers\": 3"));
        var (c2, _, e2) = Run("encode", "-m", Model, "--config", deeper, "--texts", "a cat", "-o", Path.Combine(dir.FullName, "e.safetensors"));
        AssertOneLineError(c2, e2, "--config", "deeper.json", "vision_layers: 3 in the config, 2 in the weights");
        Assert.Equal(1, c2);
        Assert.True(e2.Length < 300, e2);
        Assert.False(File.Exists(Path.Combine(dir.FullName, "e.safetensors")));

        // Its own config still fits.
        var (c3, out3, e3) = Run("info", Model, "--config", Golden.Path("models", "vit_small.config.json"));
        Assert.True(c3 == 0, e3);
        Assert.Contains("ViT: 2 layers", out3);
    }

    [Fact]
    public void EncodeRefusesPixelsOfTheWrongSizeInOneLine()
    {
        var dir = Directory.CreateTempSubdirectory("clip-careful-");
        var big = Path.Combine(dir.FullName, "p224.safetensors");
        var (pc, _, pe) = Run("preprocess", Cat, "--size", "224", "-o", big);
        Assert.True(pc == 0, pe);
        var output = Path.Combine(dir.FullName, "e.safetensors");
        var (code, _, err) = Run("encode", "-m", Model, "--pixel-values", big, "-o", output);
        AssertOneLineError(code, err, "p224.safetensors", "224x224", "64x64");
        Assert.Equal(1, code);
        Assert.False(File.Exists(output));

        var small = Path.Combine(dir.FullName, "p64.safetensors");
        Assert.Equal(0, Run("preprocess", Cat, "--size", "64", "-o", small).Code);
        var (c2, _, e2) = Run("encode", "-m", Model, "--pixel-values", small, "-o", output);
        Assert.True(c2 == 0, e2);
        Assert.Contains("image_embeds [1,64]", e2);
    }

    [Fact]
    public void ProgressCountsSkippedImagesApartFromEncodedOnes()
    {
        var old = Console.Error;
        using var e = new StringWriter();
        Console.SetError(e);
        try { new ClipSharp.Cli.Commands.EvalCommon.PlainProgress().Report(new ClipSharp.Evaluation.ExtractionProgress(2, 3, 5, 1.0, null)); }
        finally { Console.SetError(old); }
        Assert.StartsWith("encoded 2/5 images, 3 skipped", e.ToString());
    }
}
