using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Evaluation;

/// <summary>One point of the regularisation sweep.</summary>
/// <param name="C">Inverse regularisation strength (λ = 1/C).</param>
/// <param name="ValidationAccuracy">Top-1 accuracy on the validation split.</param>
public sealed record CSweepPoint(double C, double ValidationAccuracy);

/// <summary>Result of <see cref="LinearProbe.Run"/>.</summary>
/// <param name="BestC">The C chosen on the validation split.</param>
/// <param name="Sweep">Every C evaluated, in evaluation order.</param>
/// <param name="Test">Metrics of the model refitted on train+val, on the test split.</param>
/// <param name="TrainCount">Training examples.</param>
/// <param name="ValidationCount">Validation examples.</param>
/// <param name="Iterations">L-BFGS iterations of the final fit.</param>
public sealed record LinearProbeResult(double BestC, IReadOnlyList<CSweepPoint> Sweep, ClassificationMetrics Test, int TrainCount, int ValidationCount, int Iterations);

/// <summary>
/// The paper's linear probe (appendix A.3): L2-regularised multinomial logistic regression on frozen image features.
/// λ = 1/C is chosen on a validation split by a parametric binary search: start with C ∈ {10⁻⁶, 10⁻⁴, 10⁻², 1, 10², 10⁴, 10⁶},
/// then repeatedly halve the step (in decades) around the best C, trying its two neighbours, until the resolution is
/// 8 steps per decade; then refit on train+val with the chosen C and score the test split.
/// </summary>
public static class LinearProbe
{
    /// <summary>The paper's initial grid of C values (10⁻⁶ … 10⁶, every 2 decades).</summary>
    public static IReadOnlyList<double> InitialGrid { get; } = [1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6];

    /// <summary>Runs the sweep; returns the best C and every point evaluated. Ties go to the smaller C (stronger regularisation).</summary>
    public static (double BestC, IReadOnlyList<CSweepPoint> Sweep) SweepC(Tensor trainX, IReadOnlyList<int> trainY, Tensor valX, IReadOnlyList<int> valY,
        int classes, LogisticRegressionOptions? options = null, double stepsPerDecade = 8)
    {
        var seen = new SortedDictionary<double, double>(); // log10 C → accuracy
        var points = new List<CSweepPoint>();
        LogisticRegressionModel? warm = null;
        double Score(double logC)
        {
            logC = Math.Round(logC, 6);
            if (seen.TryGetValue(logC, out var a)) return a;
            var model = LogisticRegression.Fit(trainX, trainY, classes, Math.Pow(10, logC), options, warm);
            warm = model;
            a = model.Accuracy(valX, valY);
            seen[logC] = a;
            points.Add(new CSweepPoint(Math.Pow(10, logC), a));
            return a;
        }
        foreach (var c in InitialGrid) Score(Math.Log10(c));
        double Best() => seen.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key;
        double best = Best();
        double step = 2;
        while (step > 1 / stepsPerDecade + 1e-9)
        {
            step /= 2;
            if (best - step >= -6 - 1e-9) Score(best - step);
            if (best + step <= 6 + 1e-9) Score(best + step);
            best = Best();
        }
        return (Math.Pow(10, best), points);
    }

    /// <summary>Sweep C on (train, val), refit on train+val, evaluate on test.</summary>
    public static LinearProbeResult Run(Tensor trainX, IReadOnlyList<int> trainY, Tensor valX, IReadOnlyList<int> valY,
        Tensor testX, IReadOnlyList<int> testY, IReadOnlyList<string> classNames, LogisticRegressionOptions? options = null, double? fixedC = null)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        int classes = classNames.Count;
        double bestC;
        IReadOnlyList<CSweepPoint> sweep;
        if (fixedC is double fc) { bestC = fc; sweep = []; }
        else (bestC, sweep) = SweepC(trainX, trainY, valX, valY, classes, options);
        using var scope = NewDisposeScope();
        var allX = valY.Count > 0 ? torch.cat([trainX, valX], 0) : trainX;
        var allY = trainY.Concat(valY).ToList();
        var model = LogisticRegression.Fit(allX, allY, classes, bestC, options);
        var logits = model.Logits(testX).contiguous();
        var metrics = ClassificationMetrics.Compute(logits.data<float>().ToArray(), testY, classNames);
        return new LinearProbeResult(bestC, sweep, metrics, trainY.Count, valY.Count, model.Iterations);
    }

    /// <summary>A deterministic stratified split: from each class, round(fraction · count) examples (at least one when the
    /// class has two or more) go to the second part. Indices come back sorted.</summary>
    public static (int[] First, int[] Second) StratifiedSplit(IReadOnlyList<int> labels, double secondFraction, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var rng = new Random(seed);
        var first = new List<int>();
        var second = new List<int>();
        foreach (var group in Enumerable.Range(0, labels.Count).GroupBy(i => labels[i]).OrderBy(g => g.Key))
        {
            var idx = group.ToArray();
            rng.Shuffle(idx);
            int take = (int)Math.Round(secondFraction * idx.Length, MidpointRounding.AwayFromZero);
            if (take == 0 && idx.Length >= 2 && secondFraction > 0) take = 1;
            if (take >= idx.Length) take = idx.Length - 1;
            second.AddRange(idx.Take(take));
            first.AddRange(idx.Skip(take));
        }
        first.Sort();
        second.Sort();
        return ([.. first], [.. second]);
    }
}

/// <summary>Draws k examples per class for few-shot probes, deterministically for a given seed (System.Random with an
/// explicit seed is a fixed algorithm, so the draw is the same on every run and machine).</summary>
internal static class FewShotSampler
{
    /// <summary>Indices (sorted) of k examples of every class (all of a class's examples when it has fewer than k).
    /// The same labels, k and seed always give the same indices; the draw for k is independent of other k values.</summary>
    public static int[] Sample(IReadOnlyList<int> labels, int k, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        var result = new List<int>();
        foreach (var group in Enumerable.Range(0, labels.Count).GroupBy(i => labels[i]).OrderBy(g => g.Key))
        {
            var idx = group.OrderBy(i => i).ToArray();
            // One generator per (seed, class): adding a class or changing k elsewhere does not shift this class's draw.
            var rng = new Random(unchecked(seed * 1_000_003 + group.Key * 7919) & int.MaxValue);
            rng.Shuffle(idx);
            result.AddRange(idx.Take(k));
        }
        result.Sort();
        return [.. result];
    }
}
