using System.Security.Cryptography;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Data;
using ClipSharp.Modeling;
using ClipSharp.Training;
using ClipSharp.Training.Data;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>Whole runs on the micro model: resume equivalence, crash-safe checkpoints, exported weights, logs.</summary>
public class RunTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-train-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    internal static PairSource Shapes(int bad = 0)
    {
        var samples = Enumerable.Range(0, SyntheticShapes.Count)
            .Select(i => new ImageTextSample($"shape{i}", [SyntheticShapes.Caption(i)], ImageBytes: SyntheticShapes.Png(i))).ToList();
        for (int i = 0; i < bad; i++) samples.Insert(i * 7 % samples.Count, new ImageTextSample($"bad{i}", ["garbage"], ImageBytes: [1, 2, 3, (byte)i]));
        return new PairSource("shapes", samples);
    }

    internal static TrainConfig Config(string dir, int steps = 20) => new()
    {
        Model = new ModelSection { Config = (JsonObject)JsonNode.Parse(TinyModels.Micro.ToJson())! },
        Data = new DataSection { BatchSize = 8, Workers = 1, Prefetch = 2 },
        Optimizer = new OptimizerSection { Lr = 2e-3 },
        Schedule = new ScheduleSection { Steps = steps, WarmupSteps = 3 },
        Output = new OutputSection { Dir = dir, CheckpointEvery = 5, KeepLast = 2, EvalEvery = 10, LogEvery = 1, Tensorboard = true },
        Seed = 11,
    };

    TrainingRun NewRun(TrainConfig cfg) => new(cfg, root, OverfitTests.Tokenizer, [Shapes(bad: 2)], Shapes());

    [Fact]
    public void TwentyStepsEqualTenStepsKillResumeTen()
    {
        var straight = NewRun(Config(Path.Combine(root, "a"))).Run();
        var first = NewRun(Config(Path.Combine(root, "b"))).Run(stopAfterStep: 10);
        Assert.Null(first.FinalWeights);
        Assert.Equal(10, first.Steps);
        var resumed = NewRun(Config(Path.Combine(root, "b"))).Run(resume: "latest");
        Assert.Equal(20, resumed.Steps);

        using var a = SafeTensors.Load(straight.FinalWeights!);
        using var b = SafeTensors.Load(resumed.FinalWeights!);
        Assert.Equal(a.Keys, b.Keys);
        foreach (var k in a.Keys) TensorAssert.Absolute(b[k], a[k], 1e-6, k);
        // The exported weights load with the foundation loader.
        using var loaded = ClipModel.Load(straight.FinalWeights!);
        Assert.Equal(TinyModels.Micro, loaded.Config);
    }

    [Fact]
    public void CrashDuringSaveLeavesThePreviousCheckpointIntact()
    {
        var cfg = Config(Path.Combine(root, "c"));
        NewRun(cfg).Run(stopAfterStep: 5);
        var store = new CheckpointStore(Path.Combine(root, "c"));
        string previous = store.Latest()!;
        var hash = SHA256.HashData(File.ReadAllBytes(previous));

        var run = NewRun(cfg);
        run.Store.BeforeCommit = staged =>
        {
            // Half-written state on disk, then the process "dies".
            using (var f = new FileStream(staged, FileMode.Open)) f.SetLength(f.Length / 2);
            throw new IOException("simulated crash during save");
        };
        Assert.Throws<IOException>(() => run.Run(resume: "latest"));

        Assert.Equal(previous, store.Latest());
        Assert.Equal(hash, SHA256.HashData(File.ReadAllBytes(previous)));
        Assert.Empty(Directory.GetFiles(store.Directory, "*.partial"));
        Assert.Single(store.List());
        // And the run resumes from it.
        var done = NewRun(cfg).Run(resume: "latest");
        Assert.Equal(20, done.Steps);
        Assert.Equal(2, store.List().Count); // keep_last = 2
    }

    [Fact]
    public void RunWritesResolvedConfigMetricsTensorboardAndBest()
    {
        var cfg = Config(Path.Combine(root, "d"), steps: 10);
        var result = NewRun(cfg).Run();
        string dir = Path.Combine(root, "d");
        var again = TrainConfig.FromJson(File.ReadAllText(Path.Combine(dir, "config.resolved.json")));
        Assert.Equal(cfg.ToJson(), again.ToJson());
        var rows = MetricsLog.Read(Path.Combine(dir, "metrics.jsonl"));
        Assert.Equal(10, rows.Count(r => r.ContainsKey("train/loss")));
        Assert.Contains(rows, r => r.ContainsKey("val/i2t_r1"));
        Assert.Contains(rows, r => r.TryGetValue("train/skipped", out var s) && s > 0);
        Assert.True(File.Exists(Path.Combine(dir, "best.safetensors")));
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "tensorboard"), "events.out.tfevents.*"));
        Assert.True(result.LastValidation.ContainsKey("val/t2i_r1"));
    }
}
