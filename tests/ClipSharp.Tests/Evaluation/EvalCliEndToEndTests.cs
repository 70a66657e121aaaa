using System.Text.Json;

namespace ClipSharp.Tests.Evaluation;

/// <summary>Every <c>clip eval</c> command and <c>clip predict</c>, run in-process on a tiny generated folder with the golden vit_small model.</summary>
// In the "console" collection: the commands write to Console, which the issue-2 CLI tests capture.
[Collection("console")]
public class EvalCliEndToEndTests
{
    static string[] Common(TestData.TempDir tmp) =>
    [
        "-m", Golden.Path("models", "vit_small.safetensors"),
        "--vocab", Golden.Path("bpe_simple_vocab_16e6.txt.gz"),
        "--cache-dir", tmp["cache"], "-o", tmp["out"], "-q", "--batch-size", "4", "--workers", "2",
    ];

    static JsonElement Run(TestData.TempDir tmp, string file, params string[] args)
    {
        int code = ClipSharp.Cli.Program.Main([.. args, .. Common(tmp)]);
        Assert.Equal(0, code);
        var path = Path.Combine(tmp["out"], file);
        Assert.True(File.Exists(path), $"{file} was not written");
        Assert.True(File.Exists(Path.ChangeExtension(path, ".md")), $"{file}: no Markdown report");
        return JsonDocument.Parse(File.ReadAllText(path)).RootElement;
    }

    static double Fraction(JsonElement e)
    {
        double v = e.GetDouble();
        Assert.InRange(v, 0, 1);
        return v;
    }

    [Fact]
    public void EveryEvalCommandWritesItsReport()
    {
        using var tmp = new TestData.TempDir();
        TestData.ImageFolder(tmp["a"], perClass: 4, corrupt: true);
        TestData.ImageFolder(tmp["b"], perClass: 3, seedOffset: 50);
        File.WriteAllText(tmp["caps.csv"], "image,caption\n" + string.Concat(TestData.Colours.SelectMany(c => Enumerable.Range(0, 2).SelectMany(i => new[]
        {
            $"a/{c.Name}/img{i}.png,a {c.Name} square\n", $"a/{c.Name}/img{i}.png,something {c.Name}\n",
        }))) + "a/green/broken.jpg,a broken file\n");

        var zs = Run(tmp, "zeroshot.json", "eval", "zeroshot", "--data", tmp["a"], "--templates", "simple", "a {} square.");
        Assert.Equal("zeroshot", zs.GetProperty("evaluation").GetString());
        var r = zs.GetProperty("result");
        var m = r.GetProperty("metrics");
        Fraction(m.GetProperty("top1"));
        Assert.Equal(1.0, Fraction(m.GetProperty("top5"))); // 3 classes
        // ... and the report says that this is by construction, not a result (issue 12).
        Assert.True(zs.GetProperty("settings").GetProperty("top5_covers_all_classes").GetBoolean());
        Assert.Contains("k = 5 >= the 3 classes", zs.GetProperty("settings").GetProperty("notes")[0].GetString());
        Assert.Contains("by construction", File.ReadAllText(tmp["out/zeroshot.md"]));
        Fraction(m.GetProperty("mean_per_class_recall"));
        Assert.Equal(3, m.GetProperty("per_class").GetArrayLength());
        Assert.Equal(3, m.GetProperty("confusion").GetArrayLength());
        Assert.Equal(12, r.GetProperty("dataset").GetProperty("images").GetInt32());
        Assert.Equal(1, r.GetProperty("dataset").GetProperty("skipped_count").GetInt32());
        Assert.Contains("broken.jpg", r.GetProperty("dataset").GetProperty("skipped")[0].GetProperty("id").GetString());
        Assert.Equal(2, r.GetProperty("templates").GetInt32());
        Assert.Equal(100, r.GetProperty("scale").GetDouble(), 3);
        Assert.True(File.Exists(tmp["out/zeroshot_confusion.png"]));

        // The second run of the same data is served from the feature cache.
        zs = Run(tmp, "zeroshot.json", "eval", "zeroshot", "--data", tmp["a"], "--templates", "simple", "--logit-scale", "model");
        Assert.Equal("hit", zs.GetProperty("result").GetProperty("dataset").GetProperty("cache").GetString());

        var ret = Run(tmp, "retrieval.json", "eval", "retrieval", "--data", tmp["caps.csv"]).GetProperty("result");
        Assert.Equal(6, ret.GetProperty("dataset").GetProperty("images").GetInt32());
        Assert.Equal(12, ret.GetProperty("texts").GetInt32());
        foreach (var dir in new[] { "image_to_text", "text_to_image" })
        {
            var d = ret.GetProperty("metrics").GetProperty(dir);
            var rk = d.GetProperty("recall_at_k");
            Assert.True(Fraction(rk.GetProperty("1")) <= Fraction(rk.GetProperty("5")));
            Assert.Equal(1.0, Fraction(rk.GetProperty("10"))); // at most 12 candidates, 10 ≥ the worst rank of 6 images
            Assert.InRange(d.GetProperty("median_rank").GetDouble(), 1, 12);
        }

        var lp = Run(tmp, "linear_probe.json", "eval", "linear-probe", "--train", tmp["a"], "--test", tmp["b"]).GetProperty("result");
        var probe = lp.GetProperty("probe");
        Assert.InRange(probe.GetProperty("best_c").GetDouble(), 1e-6, 1e6);
        Assert.True(probe.GetProperty("sweep").GetArrayLength() >= 7);
        Fraction(probe.GetProperty("test").GetProperty("top1"));
        Assert.Equal(9, lp.GetProperty("test").GetProperty("images").GetInt32());

        var fs = Run(tmp, "few_shot.json", "eval", "few-shot", "--train", tmp["a"], "--test", tmp["b"], "--k", "1,2", "--seeds", "2", "--templates", "simple").GetProperty("result");
        Fraction(fs.GetProperty("zero_shot_top1"));
        Assert.Equal(2, fs.GetProperty("points").GetArrayLength());
        Assert.Equal(2, fs.GetProperty("points")[1].GetProperty("k").GetInt32());
        Assert.Equal(2, fs.GetProperty("points")[0].GetProperty("accuracies").GetArrayLength());
        Assert.True(File.Exists(tmp["out/few_shot.png"]));

        var rb = Run(tmp, "robustness.json", "eval", "robustness", "--domain", tmp["a"], "--domain", tmp["b"], "--domain-name", "clean", "shifted", "--templates", "simple").GetProperty("result");
        var domains = rb.GetProperty("domains");
        Assert.Equal(2, domains.GetArrayLength());
        Assert.Equal("shifted", domains[1].GetProperty("name").GetString());
        var d1 = domains[1];
        Assert.Equal(Fraction(d1.GetProperty("zero_shot_top1")) - Fraction(d1.GetProperty("probe_top1")), d1.GetProperty("gap").GetDouble(), 9);
        Assert.True(File.Exists(tmp["out/robustness.png"]));

        // WebDataset shards with .cls labels and the class names from a file.
        TestData.Tar(tmp["shard-0.tar"], TestData.Colours.SelectMany((c, i) => new[]
        {
            ($"{c.Name}0.png", TestData.Png(c.R, c.G, c.B, seed: 7 + i)), ($"{c.Name}0.cls", TestData.Utf8(i.ToString())),
        }).Append(("orphan.txt", TestData.Utf8("caption without image"))));
        File.WriteAllLines(tmp["names.txt"], ["red", "green", "blue"]);
        var wds = Run(tmp, "zeroshot.json", "eval", "zeroshot", "--data", tmp["shard-{0..0}.tar"], "--classnames", tmp["names.txt"], "--templates", "simple").GetProperty("result");
        Assert.Equal(3, wds.GetProperty("dataset").GetProperty("images").GetInt32());
        Assert.Equal(1, wds.GetProperty("dataset").GetProperty("skipped_count").GetInt32());
        Assert.Equal("red", wds.GetProperty("metrics").GetProperty("per_class")[0].GetProperty("name").GetString());

        int code = ClipSharp.Cli.Program.Main(["predict", tmp["a/red"], tmp["a/green"], "--classnames", "cifar10", "--templates", "simple", "-k", "3", "--csv", tmp["out/pred.csv"], .. Common(tmp)]);
        Assert.Equal(3, code); // complete CSV, but one image had no prediction
        var lines = File.ReadAllLines(tmp["out/pred.csv"]);
        Assert.Equal("image,label_1,prob_1,label_2,prob_2,label_3,prob_3,error", lines[0]);
        Assert.Equal(1 + 9, lines.Length); // every input has its row, broken.jpg too
        var broken = lines.Single(l => l.Split(',')[0].EndsWith("broken.jpg", StringComparison.Ordinal)).Split(',');
        Assert.All(broken[1..7], f => Assert.Equal("", f));
        Assert.NotEqual("", broken[7]);
        var good = lines.Skip(1).Where(l => !l.Contains("broken.jpg", StringComparison.Ordinal)).ToList();
        Assert.Equal(8, good.Count);
        Assert.All(good, l => Assert.Equal("", l.Split(',')[7]));
        var probs = good[0].Split(',')[1..7].Where((_, i) => i % 2 == 1).Select(f => double.Parse(f, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.True(probs[0] >= probs[1] && probs[1] >= probs[2]);
    }

    [Fact]
    public void UserErrorsAreReportedNotThrown()
    {
        using var tmp = new TestData.TempDir();
        Assert.NotEqual(0, ClipSharp.Cli.Program.Main(["eval", "zeroshot", "--data", tmp["missing"], .. Common(tmp)]));
        TestData.ImageFolder(tmp["a"], perClass: 1);
        Assert.NotEqual(0, ClipSharp.Cli.Program.Main(["eval", "zeroshot", "--data", tmp["a"], "--templates", "no-such-set", .. Common(tmp)]));
        Assert.NotEqual(0, ClipSharp.Cli.Program.Main(["eval", "few-shot", "--train", tmp["a"], "--test", tmp["a"], "--k", "0", .. Common(tmp)]));
    }
}
