using System.CommandLine;
using ClipSharp.Evaluation;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval zeroshot</c>: top-1, top-5, mean per-class recall, per-class table, confusion matrix plot.</summary>
internal static class EvalZeroShotCommand
{
    public static Command Create()
    {
        var common = new EvalCommon();
        var data = new Option<string>("--data", "-d") { Description = "Labelled images: ImageFolder directory, CSV/TSV, or WebDataset shards", Required = true };
        var classNames = EvalCommon.ClassNamesOption();
        var templates = EvalCommon.TemplatesOption();
        var scale = EvalCommon.ScaleOption();
        var cmd = new Command("zeroshot", "Zero-shot classification accuracy with prompt ensembling") { data, classNames, templates, scale };
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var names = EvalCommon.ClassNames(r, classNames);
            var tpl = EvalCommon.Templates(r, templates, classNames);
            var zs = EvalCommon.ScaleSettings(r, scale);
            return common.Run(r, zs, (ev, outDir) =>
            {
                var ds = EvalCommon.OpenLabeled(r.GetValue(data)!, common.Columns(r, names));
                var result = ev.ZeroShot(ds, tpl, names);
                int classes = (names ?? ds.ClassNames).Count;
                // Top-5 over 5 classes or fewer ranks every class: 100 % by construction, which must not pass for a result.
                string[] notes = classes <= 5
                    ? [FormattableString.Invariant($"top-5 is 100% by construction: k = 5 >= the {classes} classes, every label is among the top 5")]
                    : [];
                var png = Path.Combine(outDir, "zeroshot_confusion.png");
                Plots.ConfusionMatrix(png, result.Metrics.Confusion, names ?? ds.ClassNames, $"Zero-shot confusion (top-1 {100 * result.Metrics.Top1:0.0}%)");
                EvalReports.WriteJson(Path.Combine(outDir, "zeroshot.json"), "zeroshot", r.GetValue(common.Model),
                    new { data = r.GetValue(data), templates = tpl, class_names = names ?? ds.ClassNames, top5_covers_all_classes = classes <= 5, notes }, result);
                var markdown = EvalReports.Markdown(result, r.GetValue(common.Model), png);
                if (notes.Length > 0) markdown += Environment.NewLine + string.Concat(notes.Select(n => $"Note: {n}.{Environment.NewLine}"));
                EvalCommon.Done(outDir, "zeroshot", markdown, common.IsQuiet(r));
                foreach (var n in notes) Console.Error.WriteLine($"clip: note: {n}");
                EvalCommon.Result(FormattableString.Invariant($"top-1 {100 * result.Metrics.Top1:0.00}%  top-5 {100 * result.Metrics.Top5:0.00}%  mean per-class recall {100 * result.Metrics.MeanPerClassRecall:0.00}%  ({result.Dataset.Images} images, {result.Dataset.SkippedCount} skipped)"));
                return 0;
            });
        });
        return cmd;
    }
}
