using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ClipSharp.Checkpoints;
using ClipSharp.Training;
using Xunit.Abstractions;

namespace ClipSharp.Tests.Training;

/// <summary>
/// <c>clip train</c> as a separate process, killed with SIGKILL at moments spread over start-up, steps and checkpoint
/// writes, then resumed with <c>--resume latest</c> each time. After every kill all checkpoints on disk must load in
/// full and the newest must be at most one checkpoint interval behind the last step the process reported; the run
/// finished through the kills must end with the same weights as one that was never interrupted.
/// </summary>
public partial class KillAnywhereTests(ITestOutputHelper output) : IDisposable
{
    const int Steps = 60, CheckpointEvery = 3;
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-kill-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    [GeneratedRegex(@"^step (\d+)/\d+ ")]
    private static partial Regex StepLine();

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

    /// <summary>Starts <c>clip train</c>; returns the process and the list its reported steps are added to.</summary>
    static (Process Process, List<int> Steps) Start(string configPath, bool resume)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", Path.Combine(AppContext.BaseDirectory, "clip.dll"), "train", "--config", configPath }) psi.ArgumentList.Add(a);
        if (resume) { psi.ArgumentList.Add("--resume"); psi.ArgumentList.Add("latest"); }
        psi.Environment["OMP_NUM_THREADS"] = "1";
        var steps = new List<int>();
        var p = new Process { StartInfo = psi };
        p.Start();
        // Dedicated threads, not Process's async events: those run on the thread pool, which the other tests running
        // in parallel can starve, so step lines arrived after the child had already finished and kills were missed.
        var err = p.StandardError;
        var stdout = p.StandardOutput;
        new Thread(() =>
        {
            while (err.ReadLine() is { } line)
            {
                var m = StepLine().Match(line);
                if (m.Success) lock (steps) steps.Add(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }) { IsBackground = true, Priority = ThreadPriority.AboveNormal }.Start();
        new Thread(() => { while (stdout.ReadLine() is not null) { } }) { IsBackground = true }.Start();
        return (p, steps);
    }

    static long NewestCheckpointStep(string runDir) => new CheckpointStore(runDir).List() is { Count: > 0 } l ? l[^1].Step : 0;

    [Fact]
    public void SigkillAtAnyMomentLosesAtMostOneIntervalAndResumesToTheSameWeights()
    {
        // The reference: one uninterrupted process.
        var (straight, _) = Start(WriteRunConfig("straight"), resume: false);
        Assert.True(straight.WaitForExit(TimeSpan.FromMinutes(3)), "the uninterrupted run did not finish in 3 minutes");
        Assert.Equal(0, straight.ExitCode);

        string config = WriteRunConfig("killed");
        string runDir = Path.Combine(root, "killed");
        var rng = new Random(1234);
        long newest = 0;
        int kills = 0, attempts = 0;
        while (true)
        {
            Assert.True(++attempts < 40, "the killed run made no progress");
            var (p, reported) = Start(config, resume: attempts > 1);
            // Kill after a random step (sometimes before any step: during start-up), plus a random delay that lands
            // anywhere in the next steps, including inside checkpoint writes.
            int killAfter = kills >= 8 ? int.MaxValue : kills % 4 == 1 ? -1 : (int)newest + rng.Next(1, 2 * CheckpointEvery + 1);
            int startupDelayMs = rng.Next(50, 1500);
            var sw = Stopwatch.StartNew();
            while (!p.HasExited && sw.Elapsed < TimeSpan.FromMinutes(2))
            {
                int last;
                lock (reported) last = reported.Count > 0 ? reported[^1] : 0;
                if (killAfter < 0 ? sw.ElapsedMilliseconds > startupDelayMs : last >= killAfter) break;
                Thread.Sleep(1);
            }
            if (killAfter >= 0 && killAfter < int.MaxValue) Thread.Sleep(rng.Next(0, 25));
            if (p.HasExited)
            {
                p.WaitForExit();
                Assert.Equal(0, p.ExitCode);
                break;
            }
            p.Kill();
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(30)));
            kills++;
            int lastReported;
            lock (reported) lastReported = reported.Count > 0 ? reported[^1] : 0;

            // Nothing on disk is torn: every checkpoint loads in full, including its optimiser state.
            foreach (var (step, path) in new CheckpointStore(runDir).List())
            {
                using var ck = CheckpointStore.Load(path);
                Assert.Equal(step, ck.Step);
            }
            long now = NewestCheckpointStep(runDir);
            Assert.True(now >= newest, $"kill {kills}: the newest checkpoint went back from step {newest} to {now}");
            Assert.True(now >= lastReported - CheckpointEvery,
                $"kill {kills}: reported step {lastReported} but the newest checkpoint is step {now} (interval {CheckpointEvery})");
            output.WriteLine($"kill {kills}: after reported step {lastReported}; newest checkpoint step {now}");
            newest = now;
        }
        Assert.True(kills >= 5, $"only {kills} kills happened before the run finished");

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
