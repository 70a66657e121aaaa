using System.CommandLine;
using System.Globalization;
using System.Text;
using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip predict</c>: zero-shot top-k labels for a folder of images, as CSV.</summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var common = new EvalCommon();
        var images = new Argument<string[]>("images") { Description = "Image files or folders (searched recursively)", Arity = ArgumentArity.OneOrMore };
        var classNames = EvalCommon.ClassNamesOption();
        classNames.Required = true;
        classNames.Description = "Candidate labels: a file with one per line or a shipped list";
        var templates = EvalCommon.TemplatesOption();
        // Probabilities for people: the model's own temperature, as `clip similarity` (eval keeps the paper's 100).
        var scale = EvalCommon.ScaleOption();
        scale.DefaultValueFactory = _ => "model";
        scale.Description = "Logit multiplier before the softmax: 'model' (default, the checkpoint's exp(logit_scale), as clip similarity) or a number such as 100";
        var topK = new Option<int>("--top-k", "-k") { Description = "Labels per image", DefaultValueFactory = _ => 5 };
        var csv = new Option<string>("--csv") { Description = "Output CSV (default: stdout)" };
        var cmd = new Command("predict", "Zero-shot labels for images: CSV with the top-k labels and probabilities") { images, classNames, templates, scale, topK, csv };
        common.AddTo(cmd, columns: false);
        cmd.SetAction(r =>
        {
            var inputs = new List<ImageInput>();
            foreach (var p in r.GetValue(images)!)
            {
                if (Directory.Exists(p)) inputs.AddRange(DatasetFiles.ListImages(p).Select(f => new ImageInput(f, f)));
                else if (File.Exists(p)) inputs.Add(new ImageInput(p, p));
                else throw new CliException($"not found: {p}");
            }
            if (inputs.Count == 0) throw new CliException("no images found");
            int k = r.GetValue(topK);
            if (k < 1) throw new CliException("--top-k must be at least 1");
            var names = EvalCommon.ClassNames(r, classNames)!;
            var tpl = EvalCommon.Templates(r, templates, classNames);
            return common.Run(r, EvalCommon.ScaleSettings(r, scale), (ev, outDir) =>
            {
                using var clf = ev.Classifier(names, tpl);
                var (preds, summary) = ev.Predict(inputs, clf, k, "predict:" + string.Join("|", r.GetValue(images)!));
                k = Math.Min(k, names.Count);
                // One row per input, in input order: an image that could not be read keeps its row, with empty labels
                // and the reason in the last column, so a CSV never silently has fewer rows than inputs.
                var byId = preds.ToDictionary(p => p.Id, StringComparer.Ordinal);
                var failed = summary.Skipped.GroupBy(s => s.Id, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Reason, StringComparer.Ordinal);
                var sb = new StringBuilder();
                sb.Append("image");
                for (int j = 1; j <= k; j++) sb.Append(CultureInfo.InvariantCulture, $",label_{j},prob_{j}");
                sb.Append(",error\n");
                foreach (var input in inputs)
                {
                    sb.Append(Quote(input.Id));
                    if (byId.TryGetValue(input.Id, out var p))
                    {
                        foreach (var (label, prob) in p.Top) sb.Append(',').Append(Quote(label)).Append(',').Append(prob.ToString("0.######", CultureInfo.InvariantCulture));
                        for (int j = p.Top.Count; j < k; j++) sb.Append(",,");
                        sb.Append(',');
                    }
                    else
                    {
                        for (int j = 0; j < k; j++) sb.Append(",,");
                        sb.Append(',').Append(Quote(failed.TryGetValue(input.Id, out var why) ? why : "not predicted"));
                    }
                    sb.Append('\n');
                }
                var path = r.GetValue(csv);
                if (path is null) EvalCommon.Result(sb.ToString().TrimEnd('\n'));
                else
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
                    File.WriteAllText(path, sb.ToString());
                    if (!common.IsQuiet(r)) EvalCommon.Status($"wrote {preds.Count} predictions to {path}");
                }

                int unread = inputs.Count - preds.Count;
                if (unread == 0) return 0;
                // Exit 3: the CSV is complete, but some images had no prediction (their rows carry the reason).
                Console.Error.WriteLine($"clip: {unread} of {inputs.Count} images could not be read; their rows in the CSV say why (exit code 3)");
                return 3;
            });
        });
        return cmd;
    }

    static string Quote(string s) => s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
}
