using System.CommandLine;
using ClipSharp.Training;
using ClipSharp.Training.Distributed;
using Spectre.Console;

namespace ClipSharp.Cli.Commands;

/// <summary>
/// <c>clip train --config FILE [--set key=value ...] [--resume latest|PATH]</c>; data-parallel when started by an MPI
/// launcher (<c>mpirun -np 2 ./clip train ...</c>, <c>srun</c>), which gives each process its rank.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "Training config (.json, .yaml or .yml)", Required = true };
        var set = new Option<string[]>("--set") { Description = "Override a config value by dotted path, e.g. --set optimizer.lr=1e-4 (repeatable)", AllowMultipleArgumentsPerToken = false };
        var resume = new Option<string?>("--resume") { Description = "'latest' (newest checkpoint in the run directory) or a checkpoint path" };
        var timeout = new Option<double?>("--dist-timeout") { Description = "Data-parallel (under mpirun/srun): seconds one collective may wait for the other ranks before this rank gives up (default 600)" };
        // The options of the TCP transport that MPI replaced: kept hidden, to say how to launch now.
        var gone = new[] { "--rank", "--world-size", "--master" }.Select(n => new Option<string?>(n) { Hidden = true }).ToArray();
        var cmd = new Command("train", "Train or fine-tune a CLIP model from a config file (data-parallel under mpirun or srun)") { config, set, resume, timeout };
        foreach (var g in gone) cmd.Options.Add(g);
        cmd.SetAction((r, cancel) =>
        {
            if (gone.FirstOrDefault(g => r.GetResult(g) is not null) is { } used)
                throw new CliException($"{used.Name} is gone: ranks come from MPI now; {Launcher.Usage}");
            return Task.FromResult(Run(r.GetValue(config)!, r.GetValue(set) ?? [], r.GetValue(resume), r.GetValue(timeout), cancel));
        });
        return cmd;
    }

    /// <summary>The MPI job this process was started in (null: a single process).</summary>
    internal static Communicator? JoinLauncher(double? timeoutSeconds)
    {
        if (timeoutSeconds is <= 0 or double.NaN) throw new CliException($"--dist-timeout {timeoutSeconds} must be a positive number of seconds");
        try { return Communicator.Join(timeoutSeconds is double t ? TimeSpan.FromSeconds(t) : null); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    private static int Run(string configPath, string[] overrides, string? resume, double? timeoutSeconds, CancellationToken cancel)
    {
        using var world = JoinLauncher(timeoutSeconds);
        if (world is null) return Train(configPath, overrides, resume, null, cancel);
        // mpirun forwards a rank's output in the pieces it was written in, tagging each and interleaving them with the
        // other ranks' pieces; the console's own writer sends a long line in several writes, so two ranks reporting at
        // once could cut each other's lines. Every line leaves in one write call (lines up to 64 k characters).
        Console.SetError(new StreamWriter(Console.OpenStandardError(), new System.Text.UTF8Encoding(false), 1 << 16) { AutoFlush = true });
        // In an MPI job every rank reports its own failure in one line (the launcher then ends the job), and ranks
        // that all know of the failure leave MPI together.
        try
        {
            int code = Train(configPath, overrides, resume, world, cancel);
            world.Finish();
            return code;
        }
        catch (Exception e) when (e is CliException or ClipSharpException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or NotSupportedException or IOException)
        {
            world.Report($"clip: error: {(e.Message.StartsWith($"rank {world.Rank}", StringComparison.Ordinal) ? "" : $"rank {world.Rank}: ")}{e.Message}");
            if (world.FailureShared) world.Finish();
            return e is CliException ce ? ce.ExitCode : 1;
        }
    }

    private static int Train(string configPath, string[] overrides, string? resume, Communicator? distributed, CancellationToken cancel)
    {
        TrainConfig cfg;
        try { cfg = TrainConfig.Load(configPath, overrides); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        var run = new TrainingRun(cfg, baseDir) { Distributed = distributed };
        bool quiet = distributed is { Rank: > 0 };
        if (!quiet) Console.Error.WriteLine($"run directory: {run.RunDirectory}" + (distributed is null ? "" : $" (rank 0 of {distributed.WorldSize} writes it)"));
        if (!quiet) Console.Error.WriteLine($"sources: {string.Join(", ", run.Sources.Select(s => $"{s.Name} ({s.Samples.Count} pairs, weight {s.Weight}" + (s.SkippedWhenOpening > 0 ? $", {s.SkippedWhenOpening} rows skipped" : "") + ")"))}");
        var logPath = Path.Combine(run.RunDirectory, distributed is { Rank: > 0 } ? $"train.rank{distributed.Rank}.log" : "train.log");
        Directory.CreateDirectory(run.RunDirectory);
        using var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        int skippedShown = 0;
        run.OnLog = line =>
        {
            log.WriteLine($"{DateTime.Now:O} {line}");
            if (line.StartsWith("skipped", StringComparison.Ordinal) && ++skippedShown > 20) return;
            Console.Error.WriteLine(line);
        };
        RunResult result;
        if (quiet)
        {
            // One console for the job: the other ranks log to their own file and print only where they run, and errors.
            run.OnLog = line =>
            {
                log.WriteLine($"{DateTime.Now:O} {line}");
                if (line.StartsWith("data-parallel:", StringComparison.Ordinal)) Console.Error.WriteLine(line);
            };
            run.OnProgress = p => log.WriteLine($"{DateTime.Now:O} {Describe(p)}");
            result = run.Run(resume, cancel: cancel);
        }
        else if (Console.IsErrorRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            run.OnProgress = p =>
            {
                if (p.Result.Step % Math.Max(1, cfg.Output.LogEvery) == 0 || p.Result.Step == p.TotalSteps)
                    Console.Error.WriteLine(Describe(p));
            };
            result = run.Run(resume, cancel: cancel);
        }
        else
        {
            result = null!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("starting", maxValue: cfg.Schedule.Steps);
                    run.OnProgress = p =>
                    {
                        task.Value = p.Result.Step;
                        task.Description = Markup.Escape(Describe(p));
                    };
                    result = run.Run(resume, cancel: cancel);
                });
        }
        if (quiet) return 0;
        Console.Error.WriteLine($"done: {result.Steps} steps, {result.SamplesPerSecond:F1} samples/s; final weights {result.FinalWeights}");
        foreach (var (k, v) in result.LastValidation) Console.Error.WriteLine($"  {k} = {v:F4}");
        return 0;
    }

    private static string Describe(RunProgress p) =>
        $"step {p.Result.Step}/{p.TotalSteps} loss {p.Result.Loss:F4} lr {p.Result.Lr:E2} scale {p.Result.LogitScale:F2} " +
        $"{p.SamplesPerSecond:F1} samples/s ETA {p.Eta:hh\\:mm\\:ss}" + (p.SkippedSamples > 0 ? $" skipped {p.SkippedSamples}" : "");
}
