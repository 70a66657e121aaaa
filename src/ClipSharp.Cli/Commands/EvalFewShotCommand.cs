using System.CommandLine;
using ClipSharp.Evaluation;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval few-shot</c>: k-shot linear probes averaged over seeds, plotted against zero-shot.</summary>
internal static class EvalFewShotCommand
{
    public static Command Create()
    {
        var common = new EvalCommon();
        var train = new Option<string>("--train") { Description = "Labelled training pool (ImageFolder, CSV/TSV, WebDataset)", Required = true };
        var test = new Option<string>("--test") { Description = "Labelled test images, same classes", Required = true };
        var k = new Option<string>("--k") { Description = "Comma-separated shots per class", DefaultValueFactory = _ => "1,2,4,8,16" };
        var seeds = new Option<int>("--seeds") { Description = "Number of seeds (0 … n−1) to average over", DefaultValueFactory = _ => 3 };
        var valFraction = new Option<double>("--val-fraction") { Description = "Fraction of the pool held out to choose C (never sampled as shots)", DefaultValueFactory = _ => 0.2 };
        var c = new Option<double?>("--c") { Description = "Use this C for every probe instead of sweeping on the held-out part" };
        var classNames = EvalCommon.ClassNamesOption();
        var templates = EvalCommon.TemplatesOption();
        var scale = EvalCommon.ScaleOption();
        var cmd = new Command("few-shot", "Few-shot linear probes vs zero-shot (how many labels is zero-shot worth)") { train, test, k, seeds, valFraction, c, classNames, templates, scale };
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var ks = EvalCommon.IntList(r.GetValue(k)!, "--k");
            int n = r.GetValue(seeds);
            if (n < 1) throw new CliException("--seeds must be at least 1");
            double vf = r.GetValue(valFraction);
            if (vf <= 0 || vf >= 1) throw new CliException("--val-fraction must be between 0 and 1");
            var names = EvalCommon.ClassNames(r, classNames);
            var tpl = EvalCommon.Templates(r, templates, classNames);
            return common.Run(r, EvalCommon.ScaleSettings(r, scale), (ev, outDir) =>
            {
                var cols = common.Columns(r, names);
                var trainDs = EvalCommon.OpenLabeled(r.GetValue(train)!, cols);
                var testDs = EvalCommon.OpenLabeled(r.GetValue(test)!, cols with { ClassNames = trainDs.ClassNames });
                FewShotResult result;
                try { result = ev.FewShot(trainDs, testDs, ks, Enumerable.Range(0, n).ToList(), tpl, names, vf, r.GetValue(c)); }
                catch (Exception e) when (e is InvalidDataException or ClipSharpException) { throw new CliException(e.Message); }
                var png = Path.Combine(outDir, "few_shot.png");
                Plots.FewShot(png, result.Points.Select(p => p.K).ToList(), result.Points.Select(p => p.Mean).ToList(), result.Points.Select(p => p.StdDev).ToList(),
                    result.ZeroShotTop1, "Few-shot linear probe vs zero-shot");
                EvalReports.WriteJson(Path.Combine(outDir, "few_shot.json"), "few-shot", r.GetValue(common.Model),
                    new { train = r.GetValue(train), test = r.GetValue(test), k = ks, seeds = n, val_fraction = vf, c = r.GetValue(c), templates = tpl }, result);
                EvalCommon.Done(outDir, "few_shot", EvalReports.Markdown(result, r.GetValue(common.Model), png), common.IsQuiet(r));
                EvalCommon.Result(FormattableString.Invariant($"zero-shot {100 * result.ZeroShotTop1:0.00}%; ") +
                    string.Join("  ", result.Points.Select(p => FormattableString.Invariant($"{p.K}-shot {100 * p.Mean:0.00}%"))));
                return 0;
            });
        });
        return cmd;
    }
}
