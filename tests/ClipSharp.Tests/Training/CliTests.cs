using ClipSharp.Checkpoints;
using ClipSharp.Tests.Modeling;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>The training commands run in-process: debug loss-grad against golden, train from a CSV config, plot.</summary>
// In the "console" collection: the commands write to Console, which the issue-2 CLI tests capture.
[Collection("console")]
public class CliTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-cli-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void DebugLossGradWritesGoldenLossAndEveryGradient(string name)
    {
        string outPath = Path.Combine(root, name + ".grads.safetensors");
        string io = Golden.Path("models", name + ".io.safetensors");
        int rc = ClipSharp.Cli.Program.Main(["debug", "loss-grad", "--model", Golden.Path("models", name + ".safetensors"),
            "--config", Golden.Path("models", name + ".config.json"), "--pixel-values", io, "--input-ids", io, "--output", outPath]);
        Assert.Equal(0, rc);
        using var got = SafeTensors.Load(outPath);
        var expected = GoldenTensors.Load(io);
        TensorAssert.Relative(got["loss"], expected["loss"], 1e-4, "loss");
        foreach (var key in expected.Keys.Where(k => k.StartsWith("grad.")))
            TensorAssert.Relative(got[key], expected[key], 1e-4, key);
        using var model = ModelParityTests.LoadGoldenModel(name);
        Assert.Equal(model.named_parameters().Count() + 1, got.Count);
        foreach (var t in expected.Values) t.Dispose();
    }

    [Fact]
    public void TrainFromCsvConfigThenPlot()
    {
        var lines = new List<string> { "filepath,title" };
        for (int i = 0; i < SyntheticShapes.Count; i++)
        {
            File.WriteAllBytes(Path.Combine(root, $"s{i}.png"), SyntheticShapes.Png(i));
            lines.Add($"s{i}.png,\"{SyntheticShapes.Caption(i)}\"");
        }
        lines.Add("missing.png,a missing image");
        File.WriteAllLines(Path.Combine(root, "train.csv"), lines);
        string config = Path.Combine(root, "train.yaml");
        File.WriteAllText(config, $"""
            model:
              name: cpu-vit-micro
            data:
              vocab: {Golden.Path("bpe_simple_vocab_16e6.txt.gz")}
              batch_size: 8
              workers: 1
              train:
                - type: csv
                  path: train.csv
                  caption_column: title
              val:
                type: csv
                path: train.csv
                caption_column: title
            schedule:
              steps: 6
              warmup_steps: 2
            output:
              dir: {Path.Combine(root, "run")}
              checkpoint_every: 3
              eval_every: 3
              log_every: 1
            """);
        int rc = ClipSharp.Cli.Program.Main(["train", "--config", config, "--set", "optimizer.lr=1e-3"]);
        Assert.Equal(0, rc);
        string run = Path.Combine(root, "run");
        Assert.True(File.Exists(Path.Combine(run, "final.safetensors")));
        Assert.Contains("0.001", File.ReadAllText(Path.Combine(run, "config.resolved.json")));
        Assert.Equal(0, ClipSharp.Cli.Program.Main(["plot", run]));
        foreach (var f in new[] { "loss.png", "accuracy.png", "logit_scale.png", "lr.png" })
            Assert.True(new FileInfo(Path.Combine(run, "plots", f)).Length > 1000, f);
    }
}
