using System.CommandLine;
using ClipSharp.Training;
using Spectre.Console;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip train --config FILE [--set key=value ...] [--resume latest|PATH]</c>.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "Training config (.json, .yaml or .yml)", Required = true };
        var set = new Option<string[]>("--set") { Description = "Override a config value by dotted path, e.g. --set optimizer.lr=1e-4 (repeatable)", AllowMultipleArgumentsPerToken = false };
        var resume = new Option<string?>("--resume") { Description = "'latest' (newest checkpoint in the run directory) or a checkpoint path" };
        var cmd = new Command("train", "Train or fine-tune a CLIP model from a config file") { config, set, resume };
        cmd.SetAction((r, cancel) => Task.FromResult(Run(r.GetValue(config)!, r.GetValue(set) ?? [], r.GetValue(resume), cancel)));
        return cmd;
    }

    private static int Run(string configPath, string[] overrides, string? resume, CancellationToken cancel)
    {
        TrainConfig cfg;
        try { cfg = TrainConfig.Load(configPath, overrides); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        var run = new TrainingRun(cfg, baseDir);
        Console.Error.WriteLine($"run directory: {run.RunDirectory}");
        Console.Error.WriteLine($"sources: {string.Join(", ", run.Sources.Select(s => $"{s.Name} ({s.Samples.Count} pairs, weight {s.Weight})"))}");
        var logPath = Path.Combine(run.RunDirectory, "train.log");
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
