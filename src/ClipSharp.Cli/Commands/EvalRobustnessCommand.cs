using System.CommandLine;
using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval robustness</c>: zero-shot and first-domain linear probe accuracy on several domains of one class set.</summary>
internal static class EvalRobustnessCommand
{
    public static Command Create()
    {
        var common = new EvalCommon();
        var domains = new Option<string[]>("--domain") { Description = "A domain's labelled images (ImageFolder, CSV/TSV, WebDataset); repeat, the first is the probe's training domain", Required = true, AllowMultipleArgumentsPerToken = true };
        var domainNames = new Option<string[]>("--domain-name") { Description = "Display names of the domains, in the same order (default: folder/file names)", AllowMultipleArgumentsPerToken = true };
        var testFraction = new Option<double>("--test-fraction") { Description = "Fraction of the first domain held out to score it (the rest trains the probe)", DefaultValueFactory = _ => 0.5 };
        var seed = new Option<int>("--seed") { Description = "Seed of the splits", DefaultValueFactory = _ => 0 };
        var c = new Option<double?>("--c") { Description = "Use this C instead of the sweep" };
        var classNames = EvalCommon.ClassNamesOption();
        var templates = EvalCommon.TemplatesOption();
        var scale = EvalCommon.ScaleOption();
        var cmd = new Command("robustness", "Accuracy under distribution shift: zero-shot vs a linear probe trained on the first domain") { domains, domainNames, testFraction, seed, c, classNames, templates, scale };
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var paths = r.GetValue(domains) ?? [];
            if (paths.Length < 2) throw new CliException("give at least two --domain");
            var given = r.GetValue(domainNames) ?? [];
            if (given.Length > 0 && given.Length != paths.Length) throw new CliException($"{given.Length} --domain-name for {paths.Length} --domain");
            var names = given.Length > 0 ? given : paths.Select(p => Path.GetFileName(Path.TrimEndingDirectorySeparator(p))).ToArray();
            double tf = r.GetValue(testFraction);
            if (tf <= 0 || tf >= 1) throw new CliException("--test-fraction must be between 0 and 1");
            var cn = EvalCommon.ClassNames(r, classNames);
            var tpl = EvalCommon.Templates(r, templates, classNames);
            return common.Run(r, EvalCommon.ScaleSettings(r, scale), (ev, outDir) =>
            {
                var cols = common.Columns(r, cn);
                var first = EvalCommon.OpenLabeled(paths[0], cols);
                var list = new List<(string, ILabeledImageDataset)> { (names[0], first) };
                for (int i = 1; i < paths.Length; i++) list.Add((names[i], EvalCommon.OpenLabeled(paths[i], cols with { ClassNames = first.ClassNames })));
                RobustnessResult result;
                try { result = ev.Robustness(list, tpl, cn, tf, seed: r.GetValue(seed), fixedC: r.GetValue(c)); }
                catch (Exception e) when (e is InvalidDataException or ClipSharpException) { throw new CliException(e.Message); }
                var png = Path.Combine(outDir, "robustness.png");
                Plots.Robustness(png, result.Domains.Select(d => d.Name).ToList(), result.Domains.Select(d => d.ZeroShotTop1).ToList(),
                    result.Domains.Select(d => d.ProbeTop1).ToList(), "Zero-shot vs linear probe across domains");
                EvalReports.WriteJson(Path.Combine(outDir, "robustness.json"), "robustness", r.GetValue(common.Model),
                    new { domains = paths, domain_names = names, test_fraction = tf, seed = r.GetValue(seed), c = r.GetValue(c), templates = tpl }, result);
                EvalCommon.Done(outDir, "robustness", EvalReports.Markdown(result, r.GetValue(common.Model), png), common.IsQuiet(r));
                foreach (var d in result.Domains)
                    EvalCommon.Result(FormattableString.Invariant($"{d.Name}: zero-shot {100 * d.ZeroShotTop1:0.00}%  probe {100 * d.ProbeTop1:0.00}%"));
                return 0;
            });
        });
        return cmd;
    }
}
