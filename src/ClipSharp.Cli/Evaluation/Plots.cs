using ScottPlot;

namespace ClipSharp.Evaluation;

/// <summary>PNG plots for the evaluation reports (ScottPlot).</summary>
internal static class Plots
{
    /// <summary>Confusion matrix as a heat map of row-normalised counts (each true class's row sums to 1), true
    /// classes top to bottom, predicted classes left to right. Class names label the axes up to 40 classes.</summary>
    public static void ConfusionMatrix(string path, int[][] confusion, IReadOnlyList<string> classNames, string title = "Confusion matrix")
    {
        ArgumentNullException.ThrowIfNull(confusion);
        int c = confusion.Length;
        var data = new double[c, c];
        for (int i = 0; i < c; i++)
        {
            double sum = confusion[i].Sum();
            for (int j = 0; j < c; j++) data[i, j] = sum > 0 ? confusion[i][j] / sum : 0;
        }
        var plt = new Plot();
        var hm = plt.Add.Heatmap(data);
        hm.Colormap = new ScottPlot.Colormaps.Viridis();
        plt.Add.ColorBar(hm);
        plt.Title(title);
        plt.XLabel("predicted class");
        plt.YLabel("true class");
        if (c <= 40)
        {
            var pos = Enumerable.Range(0, c).Select(i => (double)i).ToArray();
            plt.Axes.Bottom.SetTicks(pos, classNames.Select(Short).ToArray());
            plt.Axes.Bottom.TickLabelStyle.Rotation = 45;
            plt.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
            // Row 0 is drawn at the top.
            plt.Axes.Left.SetTicks(pos.Select(p => c - 1 - p).ToArray(), classNames.Select(Short).ToArray());
        }
        int size = Math.Clamp(300 + 18 * c, 500, 1600);
        Save(plt, path, size + 100, size);
    }

    /// <summary>Few-shot accuracy against shots per class (log₂ axis), with the zero-shot accuracy as a horizontal line.</summary>
    public static void FewShot(string path, IReadOnlyList<int> shots, IReadOnlyList<double> accuracy, IReadOnlyList<double>? stdDev, double zeroShotAccuracy, string title)
    {
        var plt = new Plot();
        var xs = shots.Select(k => Math.Log2(k)).ToArray();
        var ys = accuracy.Select(a => 100 * a).ToArray();
        var line = plt.Add.Scatter(xs, ys);
        line.LegendText = "linear probe (mean over seeds)";
        line.MarkerSize = 8;
        if (stdDev is not null)
        {
            var err = plt.Add.ErrorBar(xs, ys, stdDev.Select(s => 100 * s).ToArray());
            err.Color = line.Color;
        }
        var zs = plt.Add.HorizontalLine(100 * zeroShotAccuracy);
        zs.LegendText = "zero-shot";
        zs.LinePattern = LinePattern.Dashed;
        plt.Axes.Bottom.SetTicks(xs, shots.Select(k => k.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        plt.XLabel("labelled examples per class");
        plt.YLabel("top-1 accuracy (%)");
        plt.Title(title);
        plt.ShowLegend(Alignment.LowerRight);
        Save(plt, path, 800, 550);
    }

    /// <summary>Grouped bars: zero-shot and linear-probe accuracy per domain.</summary>
    public static void Robustness(string path, IReadOnlyList<string> domains, IReadOnlyList<double> zeroShot, IReadOnlyList<double> probe, string title)
    {
        var plt = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        for (int i = 0; i < domains.Count; i++)
        {
            bars.Add(new Bar { Position = 3 * i, Value = 100 * zeroShot[i], FillColor = palette.GetColor(0) });
            bars.Add(new Bar { Position = 3 * i + 1, Value = 100 * probe[i], FillColor = palette.GetColor(1) });
        }
        plt.Add.Bars(bars);
        plt.Legend.ManualItems.Add(new LegendItem { LabelText = "zero-shot", FillColor = palette.GetColor(0) });
        plt.Legend.ManualItems.Add(new LegendItem { LabelText = "linear probe (trained on first domain)", FillColor = palette.GetColor(1) });
        plt.ShowLegend(Alignment.UpperRight);
        plt.Axes.Bottom.SetTicks(Enumerable.Range(0, domains.Count).Select(i => 3.0 * i + 0.5).ToArray(), domains.Select(Short).ToArray());
        plt.Axes.Margins(bottom: 0);
        plt.YLabel("top-1 accuracy (%)");
        plt.Title(title);
        Save(plt, path, Math.Max(600, 160 * domains.Count), 550);
    }

    static string Short(string s) => s.Length <= 24 ? s : s[..23] + "…";

    static void Save(Plot plt, string path, int width, int height)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        plt.SavePng(path, width, height);
    }
}
