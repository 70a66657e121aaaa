using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ClipSharp.Evaluation;

/// <summary>Writes evaluation results as JSON (snake_case fields) and Markdown reports.</summary>
public static class EvalReports
{
    /// <summary>The JSON settings used for results: snake_case, indented, NaN written as "NaN".</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        IncludeFields = false,
    };

    /// <summary>Writes <c>{"evaluation": kind, "model": …, "created_utc": …, "settings": …, "result": …}</c>.</summary>
    public static void WriteJson(string path, string kind, string? model, object settings, object result)
    {
        var doc = new Dictionary<string, object?>
        {
            ["evaluation"] = kind,
            ["model"] = model,
            ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            ["settings"] = settings,
            ["result"] = result,
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(doc, Json));
    }

    static string P(double v) => double.IsNaN(v) ? "–" : (100 * v).ToString("0.00", CultureInfo.InvariantCulture);
    static string F(double v, string fmt = "0.###") => double.IsNaN(v) ? "–" : v.ToString(fmt, CultureInfo.InvariantCulture);
    static string Cell(string s) => s.Replace("|", "\\|", StringComparison.Ordinal);

    static void Dataset(StringBuilder md, string title, DatasetSummary s)
    {
        var rate = s.Seconds > 0 ? string.Create(CultureInfo.InvariantCulture, $", {s.ImagesPerSecond:0.0} images/s") : "";
        md.AppendLine(CultureInfo.InvariantCulture, $"- {title}: `{s.Source}` — {s.Images} images encoded, {s.SkippedCount} skipped, feature cache: {s.Cache}{rate}");
    }

    static void Skipped(StringBuilder md, params DatasetSummary?[] sets)
    {
        var all = sets.Where(s => s is not null).SelectMany(s => s!.Skipped).ToList();
        if (all.Count == 0) return;
        md.AppendLine().AppendLine("## Skipped items").AppendLine().AppendLine("| item | reason |").AppendLine("|---|---|");
        foreach (var s in all) md.AppendLine(CultureInfo.InvariantCulture, $"| `{Cell(s.Id)}` | {Cell(s.Reason)} |");
    }

    /// <summary>Markdown for a zero-shot result; <paramref name="confusionPng"/> is linked when given.</summary>
    public static string Markdown(ZeroShotResult r, string? model, string? confusionPng)
    {
        var md = new StringBuilder();
        md.AppendLine("# Zero-shot classification").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- model: `{model}`");
        Dataset(md, "dataset", r.Dataset);
        md.AppendLine(CultureInfo.InvariantCulture, $"- {r.Classes} classes × {r.Templates} templates, logit scale {r.Scale:0.##}").AppendLine();
        md.AppendLine("| metric | value (%) |").AppendLine("|---|---|");
        md.AppendLine(CultureInfo.InvariantCulture, $"| top-1 accuracy | {P(r.Metrics.Top1)} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| top-5 accuracy | {P(r.Metrics.Top5)} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| mean per-class recall | {P(r.Metrics.MeanPerClassRecall)} |").AppendLine();
        md.AppendLine("## Per class").AppendLine().AppendLine("| class | images | correct | recall (%) | predicted as |").AppendLine("|---|---|---|---|---|");
        foreach (var c in r.Metrics.PerClass)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {Cell(c.Name)} | {c.Support} | {c.Correct} | {P(c.Recall)} | {c.Predicted} |");
        if (confusionPng is not null) md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"![confusion matrix]({Path.GetFileName(confusionPng)})");
        Skipped(md, r.Dataset);
        return md.ToString();
    }

    /// <summary>Markdown for a retrieval result.</summary>
    public static string Markdown(RetrievalResult r, string? model)
    {
        var md = new StringBuilder();
        md.AppendLine("# Image–text retrieval").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- model: `{model}`");
        Dataset(md, "dataset", r.Dataset);
        md.AppendLine(CultureInfo.InvariantCulture, $"- {r.Dataset.Images} images, {r.Texts} captions").AppendLine();
        var ks = r.Metrics.ImageToText.RecallAtK.Keys.Order().ToList();
        md.AppendLine("| direction | " + string.Join(" | ", ks.Select(k => $"R@{k} (%)")) + " | median rank | mean rank |");
        md.AppendLine("|---|" + string.Concat(ks.Select(_ => "---|")) + "---|---|");
        foreach (var (name, d) in new[] { ("image → text", r.Metrics.ImageToText), ("text → image", r.Metrics.TextToImage) })
            md.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {string.Join(" | ", ks.Select(k => P(d.RecallAtK[k])))} | {F(d.MedianRank)} | {F(d.MeanRank, "0.00")} |");
        Skipped(md, r.Dataset);
        return md.ToString();
    }

    /// <summary>Markdown for a linear-probe result.</summary>
    public static string Markdown(LinearProbeEvaluation r, string? model)
    {
        var md = new StringBuilder();
        md.AppendLine("# Linear probe").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- model: `{model}`");
        Dataset(md, "train", r.Train);
        if (r.Validation is not null) Dataset(md, "validation", r.Validation);
        Dataset(md, "test", r.Test);
        md.AppendLine(CultureInfo.InvariantCulture, $"- validation data: {r.ValidationFrom}; {r.Probe.TrainCount} fit + {r.Probe.ValidationCount} validation examples");
        md.AppendLine(CultureInfo.InvariantCulture, $"- chosen C = {r.Probe.BestC:G4} (λ = 1/C), refit on train+val ({r.Probe.Iterations} L-BFGS iterations)").AppendLine();
        md.AppendLine("| metric | value (%) |").AppendLine("|---|---|");
        md.AppendLine(CultureInfo.InvariantCulture, $"| test top-1 accuracy | {P(r.Probe.Test.Top1)} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| test mean per-class recall | {P(r.Probe.Test.MeanPerClassRecall)} |").AppendLine();
        if (r.Probe.Sweep.Count > 0)
        {
            md.AppendLine("## C sweep").AppendLine().AppendLine("| C | validation accuracy (%) |").AppendLine("|---|---|");
            foreach (var p in r.Probe.Sweep.OrderBy(p => p.C)) md.AppendLine(CultureInfo.InvariantCulture, $"| {p.C:G4} | {P(p.ValidationAccuracy)} |");
        }
        Skipped(md, r.Train, r.Validation, r.Test);
        return md.ToString();
    }

    /// <summary>Markdown for a few-shot result.</summary>
    public static string Markdown(FewShotResult r, string? model, string? plotPng)
    {
        var md = new StringBuilder();
        md.AppendLine("# Few-shot linear probes vs zero-shot").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- model: `{model}`");
        Dataset(md, "train pool", r.Train);
        Dataset(md, "test", r.Test);
        md.AppendLine(CultureInfo.InvariantCulture, $"- seeds: {string.Join(", ", r.Seeds)}");
        md.AppendLine(CultureInfo.InvariantCulture, $"- zero-shot top-1: {P(r.ZeroShotTop1)}%");
        md.AppendLine(r.ZeroShotMatchedAtK is double m
            ? string.Create(CultureInfo.InvariantCulture, $"- zero-shot is worth ≈ {m:0.#} labelled examples per class")
            : "- no evaluated k reaches the zero-shot accuracy").AppendLine();
        md.AppendLine("| k | mean top-1 (%) | std (%) | per seed (%) |").AppendLine("|---|---|---|---|");
        foreach (var p in r.Points)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {p.K} | {P(p.Mean)} | {P(p.StdDev)} | {string.Join(", ", p.Accuracies.Select(P))} |");
        if (plotPng is not null) md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"![few-shot]({Path.GetFileName(plotPng)})");
        Skipped(md, r.Train, r.Test);
        return md.ToString();
    }

    /// <summary>Markdown for a robustness result.</summary>
    public static string Markdown(RobustnessResult r, string? model, string? plotPng)
    {
        var md = new StringBuilder();
        md.AppendLine("# Robustness to distribution shift").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- model: `{model}`");
        md.AppendLine(CultureInfo.InvariantCulture, $"- linear probe trained on {r.ProbeTrainImages} images of `{r.Domains[0].Name}`, C = {r.ProbeC:G4}").AppendLine();
        md.AppendLine("| domain | images | zero-shot (%) | linear probe (%) | gap (zs − probe) | zero-shot drop | probe drop |").AppendLine("|---|---|---|---|---|---|---|");
        foreach (var d in r.Domains)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {Cell(d.Name)} | {d.Dataset.Images} | {P(d.ZeroShotTop1)} | {P(d.ProbeTop1)} | {P(d.Gap)} | {P(d.ZeroShotDrop)} | {P(d.ProbeDrop)} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Mean over shifted domains: zero-shot {P(r.MeanShiftZeroShotTop1)}%, probe {P(r.MeanShiftProbeTop1)}%.");
        if (plotPng is not null) md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"![robustness]({Path.GetFileName(plotPng)})");
        Skipped(md, [.. r.Domains.Select(d => d.Dataset)]);
        return md.ToString();
    }
}
