using System.Diagnostics;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Training;
using Xunit.Abstractions;

namespace ClipSharp.Tests.Training;

/// <summary>
/// <c>clip train</c> as a separate process, killed with SIGKILL at moments spread over start-up, steps and checkpoint
/// writes, then resumed with <c>--resume latest</c> each time. Each moment is a fail point (<see cref="FailPoints"/>):
/// the child stops itself there and the test kills it, so a kill can neither come too late on a fast machine nor too
/// early on a slow one. After every kill all checkpoints on disk must load in full and the newest must be exactly the
/// one the moment allows (at most one interval behind); the run finished through the kills must end with the same
/// weights as one that was never interrupted.
/// </summary>
public class KillAnywhereTests(ITestOutputHelper output) : IDisposable
{
    const int Steps = 60, CheckpointEvery = 3;
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-kill-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    string WriteRunConfig(string runName)
    {
        string images = Path.Combine(root, "images");
        string csv = Path.Combine(root, "pairs.csv");
        if (!File.Exists(csv))
        {
            Directory.CreateDirectory(images);
            var lines = new List<string> { "image,caption" };
            for (int i = 0; i < SyntheticShapes.Count; i++)
            {
                File.WriteAllBytes(Path.Combine(images, $"shape{i}.png"), SyntheticShapes.Png(i));
                lines.Add($"images/shape{i}.png,{SyntheticShapes.Caption(i)}");
            }
            File.WriteAllLines(csv, lines);
            using var m = TinyModels.Create(3);
            m.Save(Path.Combine(root, "init.safetensors"));
        }
        var config = new JsonObject
        {
            ["seed"] = 5,
            ["model"] = new JsonObject { ["config"] = JsonNode.Parse(TinyModels.Micro.ToJson()), ["init_from"] = "init.safetensors" },
            ["data"] = new JsonObject
            {
                ["train"] = new JsonArray(new JsonObject { ["type"] = "csv", ["path"] = "pairs.csv", ["image_column"] = "image", ["caption_column"] = "caption" }),
                ["vocab"] = Golden.Path("bpe_simple_vocab_16e6.txt.gz"),
                ["batch_size"] = 8, ["workers"] = 1, ["prefetch"] = 2,
            },
            ["optimizer"] = new JsonObject { ["lr"] = 2e-3 },
            ["schedule"] = new JsonObject { ["steps"] = Steps, ["warmup_steps"] = 3 },
            ["output"] = new JsonObject
            {
                ["dir"] = Path.Combine(root, runName), ["checkpoint_every"] = CheckpointEvery, ["keep_last"] = 2,
                ["eval_every"] = 1000, ["log_every"] = 1, ["tensorboard"] = true,
            },
        };
        string path = Path.Combine(root, runName + ".json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    /// <summary>A child <c>clip train</c> process with its stderr lines collected and the fail point it reports.</summary>
    sealed class Child
    {
        public required Process Process { get; init; }
        public List<string> Lines { get; } = [];
        /// <summary>Set when the child says it stopped at its armed fail point.</summary>
        public ManualResetEventSlim Stopped { get; } = new();
        public readonly ManualResetEventSlim StderrClosed = new();
        public string Tail() { lock (Lines) return string.Join("\n", Lines.TakeLast(15)); }
    }

    /// <summary>Starts <c>clip train</c>, armed with <paramref name="failPoint"/> (CLIPSHARP_FAILPOINT) when given.</summary>
    static Child Start(string configPath, bool resume, string? failPoint)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", Path.Combine(AppContext.BaseDirectory, "clip.dll"), "train", "--config", configPath }) psi.ArgumentList.Add(a);
        if (resume) { psi.ArgumentList.Add("--resume"); psi.ArgumentList.Add("latest"); }
        psi.Environment["OMP_NUM_THREADS"] = "1";
        if (failPoint is not null) psi.Environment["CLIPSHARP_FAILPOINT"] = failPoint;
        else psi.Environment.Remove("CLIPSHARP_FAILPOINT");
        var child = new Child { Process = new Process { StartInfo = psi } };
        child.Process.Start();
        var err = child.Process.StandardError;
        var stdout = child.Process.StandardOutput;
        // Dedicated threads, not Process's async events (those run on the thread pool that parallel tests can starve).
        new Thread(() =>
        {
            while (err.ReadLine() is { } line)
            {
                lock (child.Lines) child.Lines.Add(line);
                if (failPoint is not null && line == $"failpoint {failPoint} reached") child.Stopped.Set();
            }
            child.StderrClosed.Set();
        }) { IsBackground = true }.Start();
        new Thread(() => { while (stdout.ReadLine() is not null) { } }) { IsBackground = true }.Start();
        return child;
    }

    static long NewestCheckpointStep(string runDir) => new CheckpointStore(runDir).List() is { Count: > 0 } l ? l[^1].Step : 0;

    /// <summary>Only a hang ends a wait: a run of this size takes seconds even on a loaded machine.</summary>
    static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(10);

    /// <summary>One planned kill: the fail point the child stops at, and the newest checkpoint that must survive it.</summary>
    record Kill(string Name, long? Step, long ExpectedNewest, bool TearStagedFile = false)
    {
        public string FailPoint => Step is long k ? $"{Name}@{k}" : Name;
    }

    /// <summary>The order of the kills: every fail point at least once, the staged checkpoint both whole and torn.</summary>
    static readonly string[] Schedule =
    [
        FailPoints.StepComputed, FailPoints.Start, FailPoints.CheckpointStaged + "/torn", FailPoints.StepLogged, FailPoints.Resumed,
        FailPoints.CheckpointCommitted, FailPoints.Ready, FailPoints.CheckpointStaged, FailPoints.StepComputed,
    ];

    /// <summary>
    /// Kill number <paramref name="index"/>, with steps drawn from a seeded generator: moments during start-up (before
    /// anything is loaded, after the resume checkpoint is read, with everything built), between steps (an update applied
    /// but not reported, or reported and logged) and inside checkpoint writes (staged but not renamed, with the staged
    /// file whole or torn in half as a kill in mid-write leaves it; renamed but older ones not pruned). Each is planned
    /// from the newest checkpoint the previous kill left, so the resumed run reaches it whatever the machine's speed.
    /// </summary>
    static Kill Plan(int index, long newest, Random rng)
    {
        long step = newest + rng.Next(1, 2 * CheckpointEvery + 1);
        // Checkpoint moments lie at least two intervals ahead, so that each of them moves the newest checkpoint on.
        long checkpoint = (newest / CheckpointEvery + 2 + rng.Next(0, 2)) * CheckpointEvery;
        long checkpointBefore = Math.Max(newest, (step - 1) / CheckpointEvery * CheckpointEvery);
        return Schedule[index] switch
        {
            FailPoints.StepComputed or FailPoints.StepLogged => new(Schedule[index], step, checkpointBefore),
            FailPoints.CheckpointStaged => new(FailPoints.CheckpointStaged, checkpoint, checkpoint - CheckpointEvery),
            FailPoints.CheckpointStaged + "/torn" => new(FailPoints.CheckpointStaged, checkpoint, checkpoint - CheckpointEvery, TearStagedFile: true),
            FailPoints.CheckpointCommitted => new(FailPoints.CheckpointCommitted, checkpoint, checkpoint),
            _ => new(Schedule[index], null, newest), // start-up: no step is lost
        };
    }

    [Fact]
    public void SigkillAtAnyMomentLosesAtMostOneIntervalAndResumesToTheSameWeights()
    {
        // The reference: one uninterrupted process.
        var straight = Start(WriteRunConfig("straight"), resume: false, failPoint: null);
        Assert.True(straight.Process.WaitForExit(HangGuard), "the uninterrupted run hung");
        straight.StderrClosed.Wait(HangGuard);
        Assert.True(straight.Process.ExitCode == 0, $"the uninterrupted run failed:\n{straight.Tail()}");

        string config = WriteRunConfig("killed");
        string runDir = Path.Combine(root, "killed");
        var rng = new Random(1234);
        long newest = 0;
        var seen = new HashSet<string>();
        bool stagedFileLeft = false;
        for (int i = 0; i < Schedule.Length; i++)
        {
            var plan = Plan(i, newest, rng);
            // The plan keeps every kill inside the run, so the run cannot end before the kills are done.
            Assert.True((plan.Step ?? newest) < Steps, $"kill {i + 1} ({plan.FailPoint}) is planned past the end of the run");
            if (plan.Name == FailPoints.Resumed) Assert.True(newest > 0, "the schedule resumes before any checkpoint exists");
            var child = Start(config, resume: i > 0, plan.FailPoint);
            // Wait for the child to stop itself at the fail point (or to end, which would be the code's fault).
            int which = WaitHandle.WaitAny([child.Stopped.WaitHandle, child.StderrClosed.WaitHandle], HangGuard);
            Assert.True(which != WaitHandle.WaitTimeout, $"kill {i + 1}: the child neither reached {plan.FailPoint} nor ended:\n{child.Tail()}");
            Assert.True(child.Stopped.IsSet, $"kill {i + 1}: the run ended without reaching {plan.FailPoint}:\n{child.Tail()}");
            // A staged checkpoint left by the previous kill is removed before anything else happens.
            if (stagedFileLeft)
                lock (child.Lines) Assert.Contains(child.Lines, l => l.StartsWith("removed 1 temporary file", StringComparison.Ordinal));

            string[] staged = Directory.Exists(Path.Combine(runDir, "checkpoints"))
                ? Directory.GetFiles(Path.Combine(runDir, "checkpoints"), "*.partial") : [];
            if (plan.Name == FailPoints.CheckpointStaged)
            {
                Assert.Single(staged);
                if (plan.TearStagedFile)
                    using (var f = new FileStream(staged[0], FileMode.Open, FileAccess.Write)) f.SetLength(f.Length / 2);
            }
            stagedFileLeft = staged.Length > 0;
            child.Process.Kill();
            Assert.True(child.Process.WaitForExit(HangGuard));
            seen.Add(plan.Name);

            // Nothing on disk is torn: every checkpoint loads in full, including its optimiser state.
            foreach (var (step, path) in new CheckpointStore(runDir).List())
            {
                using var ck = CheckpointStore.Load(path);
                Assert.Equal(step, ck.Step);
            }
            long now = NewestCheckpointStep(runDir);
            output.WriteLine($"kill {i + 1} at {plan.FailPoint}{(plan.TearStagedFile ? " (staged file torn)" : "")}: newest checkpoint step {now}");
            Assert.True(now == plan.ExpectedNewest,
                $"kill {i + 1} at {plan.FailPoint}: the newest checkpoint is step {now}, expected {plan.ExpectedNewest} (interval {CheckpointEvery})");
            Assert.True(now >= newest, $"kill {i + 1}: the newest checkpoint went back from step {newest} to {now}");
            newest = now;
        }
        Assert.Equal(FailPoints.Names.Order(), seen.Order());

        // The last process runs to the end.
        var last = Start(config, resume: true, failPoint: null);
        Assert.True(last.Process.WaitForExit(HangGuard), "the resumed run hung");
        last.StderrClosed.Wait(HangGuard);
        Assert.True(last.Process.ExitCode == 0, $"the resumed run failed:\n{last.Tail()}");
        Assert.Contains(last.Lines, l => l.StartsWith("done: 60 steps", StringComparison.Ordinal));

        using var a = SafeTensors.Load(Path.Combine(root, "straight", "final.safetensors"));
        using var b = SafeTensors.Load(Path.Combine(runDir, "final.safetensors"));
        Assert.Equal(a.Keys, b.Keys);
        foreach (var k in a.Keys) TensorAssert.Absolute(b[k], a[k], 1e-6, k);

        // No temporary files survive the final process, and the metrics read back as one clean run.
        Assert.DoesNotContain(Directory.EnumerateFiles(runDir, "*", SearchOption.AllDirectories),
            f => f.EndsWith(".tmp", StringComparison.Ordinal) || f.EndsWith(".partial", StringComparison.Ordinal));
        var steps = MetricsLog.Read(Path.Combine(runDir, "metrics.jsonl")).Where(r => r.ContainsKey("train/loss")).Select(r => (int)r["step"]).ToList();
        Assert.Equal(Enumerable.Range(1, Steps), steps);
    }
}
