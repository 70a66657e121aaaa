using System.CommandLine;
using ClipSharp.Training;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip plot RUN_DIR</c>: learning curves from metrics.jsonl to PNG.</summary>
internal static class PlotCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("run-dir") { Description = "A training run directory (holds metrics.jsonl)" };
        var output = new Option<string?>("--output", "-o") { Description = "Folder for the PNGs (default: RUN_DIR/plots)" };
        var cmd = new Command("plot", "Draw learning curves (loss, validation accuracy, logit scale, learning rate) of a run to PNG") { dir, output };
        cmd.SetAction(r =>
        {
            string run = r.GetValue(dir)!;
            string metrics = Path.Combine(run, "metrics.jsonl");
            if (!Directory.Exists(run)) throw new CliException(File.Exists(run) ? $"{run}: is a file; plot takes a training run folder" : $"run folder not found: {run}");
            if (!File.Exists(metrics)) throw new CliException($"no metrics.jsonl in {run} (not a training run folder?)");
            string outDir = r.GetValue(output) ?? Path.Combine(run, "plots");
            foreach (var file in LearningCurves.Draw(MetricsLog.Read(metrics), outDir)) Console.Error.WriteLine($"wrote {file}");
            return 0;
        });
        return cmd;
    }
}

/// <summary>Renders metric series with ScottPlot.</summary>
internal static class LearningCurves
{
    private static readonly (string File, string Title, string YLabel, string[] Keys)[] Panels =
    [
        ("loss.png", "Loss", "loss", ["train/loss", "val/loss"]),
        ("accuracy.png", "Validation accuracy", "accuracy", ["val/i2t_r1", "val/t2i_r1", "val/zeroshot_top1"]),
        ("logit_scale.png", "Logit scale exp(t)", "scale", ["train/logit_scale"]),
        ("lr.png", "Learning rate", "lr", ["train/lr"]),
    ];

    public static List<string> Draw(IReadOnlyList<Dictionary<string, double>> rows, string outDir)
    {
        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        foreach (var (file, title, ylabel, keys) in Panels)
        {
            var plot = new ScottPlot.Plot();
            bool any = false;
            foreach (var key in keys)
            {
                var pts = rows.Where(r => r.ContainsKey(key) && r.ContainsKey("step")).Select(r => (r["step"], r[key])).ToList();
                if (pts.Count == 0) continue;
                var s = plot.Add.Scatter(pts.Select(p => p.Item1).ToArray(), pts.Select(p => p.Item2).ToArray());
                s.LegendText = key;
                s.MarkerSize = pts.Count > 50 ? 0 : 4;
                any = true;
            }
            if (!any) continue;
            plot.Title(title);
            plot.XLabel("step");
            plot.YLabel(ylabel);
            plot.ShowLegend();
            string path = Path.Combine(outDir, file);
            plot.SavePng(path, 800, 500);
            written.Add(path);
        }
        return written;
    }
}
