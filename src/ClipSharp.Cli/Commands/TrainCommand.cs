using System.CommandLine;
using ClipSharp.Training;
using ClipSharp.Training.Distributed;
using Spectre.Console;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip train --config FILE [--set key=value ...] [--resume latest|PATH] [--rank R --world-size W --master HOST:PORT]</c>.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "Training config (.json, .yaml or .yml)", Required = true };
        var set = new Option<string[]>("--set") { Description = "Override a config value by dotted path, e.g. --set optimizer.lr=1e-4 (repeatable)", AllowMultipleArgumentsPerToken = false };
        var resume = new Option<string?>("--resume") { Description = "'latest' (newest checkpoint in the run directory) or a checkpoint path" };
        var rank = new Option<int?>("--rank") { Description = "Data-parallel: this process's rank, 0 … world size − 1 (default: $RANK)" };
        var world = new Option<int?>("--world-size") { Description = "Data-parallel: number of processes; data.batch_size is split over them (default: $WORLD_SIZE, else 1)" };
        var master = new Option<string?>("--master") { Description = "Data-parallel: HOST:PORT where rank 0 listens (default: $MASTER_ADDR:$MASTER_PORT, else 127.0.0.1:29500)" };
        var timeout = new Option<double?>("--dist-timeout") { Description = "Data-parallel: seconds any rank may wait for the others (default 600)" };
        var cmd = new Command("train", "Train or fine-tune a CLIP model from a config file") { config, set, resume, rank, world, master, timeout };
        cmd.SetAction((r, cancel) => Task.FromResult(Run(r.GetValue(config)!, r.GetValue(set) ?? [], r.GetValue(resume),
            Distributed(r.GetValue(rank), r.GetValue(world), r.GetValue(master), r.GetValue(timeout)), cancel)));
        return cmd;
    }

    /// <summary>Command-line options over the torchrun-style environment variables; null for a single process.</summary>
    internal static DistributedSettings? Distributed(int? rank, int? world, string? master, double? timeoutSeconds)
    {
        try
        {
            // The environment only fills in what the options leave out.
            var env = rank is not null && world is not null ? null : DistributedSettings.FromEnvironment();
            int w = world ?? env?.WorldSize ?? 1;
            if (w == 1 && rank is null or 0) return null;
            int r = rank ?? env?.Rank ?? throw new ArgumentException("--world-size is given but --rank (or $RANK) is not");
            var (host, port) = env is not null ? (env.MasterAddress, env.MasterPort) : DistributedSettings.MasterFromEnvironment();
            if (master is not null)
            {
                int colon = master.LastIndexOf(':');
                if (colon <= 0 || !int.TryParse(master[(colon + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port))
                    throw new ArgumentException($"--master '{master}' is not HOST:PORT");
                host = master[..colon];
            }
            var s = new DistributedSettings(r, w, host, port, timeoutSeconds is double t ? TimeSpan.FromSeconds(t) : DistributedSettings.DefaultTimeout);
            s.Validate();
            return s;
        }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    private static int Run(string configPath, string[] overrides, string? resume, DistributedSettings? distributed, CancellationToken cancel)
    {
        TrainConfig cfg;
        try { cfg = TrainConfig.Load(configPath, overrides); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        var run = new TrainingRun(cfg, baseDir) { Distributed = distributed };
        Console.Error.WriteLine($"run directory: {run.RunDirectory}" + (distributed is null ? "" : $" (rank {distributed.Rank} of {distributed.WorldSize}; rank 0 writes it)"));
        Console.Error.WriteLine($"sources: {string.Join(", ", run.Sources.Select(s => $"{s.Name} ({s.Samples.Count} pairs, weight {s.Weight}" + (s.SkippedWhenOpening > 0 ? $", {s.SkippedWhenOpening} rows skipped" : "") + ")"))}");
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
        if (Console.IsErrorRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
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
        Console.Error.WriteLine($"done: {result.Steps} steps, {result.SamplesPerSecond:F1} samples/s; final weights {result.FinalWeights}");
        foreach (var (k, v) in result.LastValidation) Console.Error.WriteLine($"  {k} = {v:F4}");
        return 0;
    }

    private static string Describe(RunProgress p) =>
        $"step {p.Result.Step}/{p.TotalSteps} loss {p.Result.Loss:F4} lr {p.Result.Lr:E2} scale {p.Result.LogitScale:F2} " +
        $"{p.SamplesPerSecond:F1} samples/s ETA {p.Eta:hh\\:mm\\:ss}" + (p.SkippedSamples > 0 ? $" skipped {p.SkippedSamples}" : "");
}
