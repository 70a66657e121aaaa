using System.CommandLine;
using System.Globalization;
using ClipSharp.Evaluation;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval linear-probe</c>: logistic regression on cached image features, C chosen on validation data.</summary>
internal static class EvalLinearProbeCommand
{
    public static Command Create()
    {
        var common = new EvalCommon();
        var train = new Option<string>("--train") { Description = "Labelled training images (ImageFolder, CSV/TSV, WebDataset)", Required = true };
        var test = new Option<string>("--test") { Description = "Labelled test images, same classes", Required = true };
        var val = new Option<string?>("--val") { Description = "Labelled validation images; default: a stratified fraction of --train" };
        var valFraction = new Option<double>("--val-fraction") { Description = "Fraction of --train held out to choose C when --val is absent", DefaultValueFactory = _ => 0.2 };
        var seed = new Option<int>("--seed") { Description = "Seed of the validation split", DefaultValueFactory = _ => 0 };
        var c = new Option<double?>("--c") { Description = "Use this C (inverse L2 strength) instead of the sweep" };
        var cmd = new Command("linear-probe", "Linear probe (L2 logistic regression, L-BFGS) on frozen image features; the paper's C sweep") { train, test, val, valFraction, seed, c };
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            double vf = r.GetValue(valFraction);
            if (vf <= 0 || vf >= 1) throw new CliException("--val-fraction must be between 0 and 1");
            if (r.GetValue(c) is double fixedC && !(fixedC > 0)) throw new CliException("--c must be positive");
            return common.Run(r, new(), (ev, outDir) =>
            {
                var cols = common.Columns(r);
                var trainDs = EvalCommon.OpenLabeled(r.GetValue(train)!, cols);
                var testDs = EvalCommon.OpenLabeled(r.GetValue(test)!, cols with { ClassNames = trainDs.ClassNames });
                var valDs = r.GetValue(val) is string v ? EvalCommon.OpenLabeled(v, cols with { ClassNames = trainDs.ClassNames }) : null;
                LinearProbeEvaluation result;
                try { result = ev.LinearProbe(trainDs, testDs, valDs, vf, r.GetValue(seed), r.GetValue(c)); }
                catch (Exception e) when (e is InvalidDataException or ClipSharpException) { throw new CliException(e.Message); }
                EvalReports.WriteJson(Path.Combine(outDir, "linear_probe.json"), "linear-probe", r.GetValue(common.Model),
                    new { train = r.GetValue(train), test = r.GetValue(test), val = r.GetValue(val), val_fraction = vf, seed = r.GetValue(seed), c = r.GetValue(c) }, result);
                EvalCommon.Done(outDir, "linear_probe", EvalReports.Markdown(result, r.GetValue(common.Model)), common.IsQuiet(r));
                EvalCommon.Result(string.Create(CultureInfo.InvariantCulture, $"test top-1 {100 * result.Probe.Test.Top1:0.00}%  C = {result.Probe.BestC:G4}"));
                return 0;
            });
        });
        return cmd;
    }
}
