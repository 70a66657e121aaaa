namespace ClipSharp.Evaluation;

/// <summary>Recall (and support) of one class.</summary>
/// <param name="Name">Class name.</param>
/// <param name="Support">Number of test images of this class.</param>
/// <param name="Correct">Of those, how many were predicted as this class (top-1).</param>
/// <param name="Recall">Correct / Support (NaN without support).</param>
/// <param name="Predicted">How many images were predicted as this class.</param>
public sealed record ClassRecall(string Name, int Support, int Correct, double Recall, int Predicted);

/// <summary>Classification metrics.</summary>
/// <param name="Count">Number of scored images.</param>
/// <param name="Top1">Fraction whose highest-scoring class is the label.</param>
/// <param name="Top5">Fraction whose label is among the 5 highest-scoring classes (all classes when fewer than 5).</param>
/// <param name="MeanPerClassRecall">Unweighted mean of per-class recall over classes that occur in the labels (balanced accuracy).</param>
/// <param name="PerClass">Per-class recall table, in class order.</param>
/// <param name="Confusion">Confusion[true][predicted] counts.</param>
/// <param name="Predictions">Top-1 prediction of each image.</param>
public sealed record ClassificationMetrics(int Count, double Top1, double Top5, double MeanPerClassRecall,
    IReadOnlyList<ClassRecall> PerClass, int[][] Confusion, int[] Predictions)
{
    /// <summary>Computes the metrics from a row-major score matrix [N, C] (logits or probabilities; only the order matters).</summary>
    /// <param name="scores">N × C scores.</param>
    /// <param name="labels">N labels in [0, C).</param>
    /// <param name="classNames">C names.</param>
    public static ClassificationMetrics Compute(ReadOnlySpan<float> scores, IReadOnlyList<int> labels, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classNames);
        int n = labels.Count, c = classNames.Count;
        if (scores.Length != (long)n * c) throw new ArgumentException($"scores has {scores.Length} values, expected {n} × {c}");
        var confusion = Enumerable.Range(0, c).Select(_ => new int[c]).ToArray();
        var predictions = new int[n];
        int top1 = 0, top5 = 0, k = Math.Min(5, c);
        for (int i = 0; i < n; i++)
        {
            var row = scores.Slice(i * c, c);
            int y = labels[i];
            if ((uint)y >= (uint)c) throw new ArgumentException($"label {y} of row {i} is outside [0, {c})");
            int best = 0;
            for (int j = 1; j < c; j++) if (row[j] > row[best]) best = j;
            // Rank of the true class: how many classes score strictly higher (ties resolved in the label's favour only if earlier).
            int higher = 0;
            for (int j = 0; j < c; j++) if (row[j] > row[y] || (row[j] == row[y] && j < y)) higher++;
            predictions[i] = best;
            confusion[y][best]++;
            if (best == y) top1++;
            if (higher < k) top5++;
        }
        var perClass = new List<ClassRecall>(c);
        for (int j = 0; j < c; j++)
        {
            int support = confusion[j].Sum();
            int predicted = 0;
            for (int t = 0; t < c; t++) predicted += confusion[t][j];
            perClass.Add(new ClassRecall(classNames[j], support, confusion[j][j], support == 0 ? double.NaN : (double)confusion[j][j] / support, predicted));
        }
        var present = perClass.Where(p => p.Support > 0).ToList();
        double mpcr = present.Count == 0 ? double.NaN : present.Average(p => p.Recall);
        return new ClassificationMetrics(n, n == 0 ? double.NaN : (double)top1 / n, n == 0 ? double.NaN : (double)top5 / n, mpcr, perClass, confusion, predictions);
    }
}

/// <summary>Retrieval metrics in one direction.</summary>
/// <param name="Queries">Number of queries.</param>
/// <param name="RecallAtK">k → fraction of queries with a correct item among the k best.</param>
/// <param name="MedianRank">Median 1-based rank of the first correct item.</param>
/// <param name="MeanRank">Mean 1-based rank of the first correct item.</param>
public sealed record RetrievalDirection(int Queries, IReadOnlyDictionary<int, double> RecallAtK, double MedianRank, double MeanRank);

/// <summary>Image↔text retrieval metrics.</summary>
/// <param name="ImageToText">Each image queries all texts; correct = any of its captions.</param>
/// <param name="TextToImage">Each caption queries all images; correct = its image.</param>
public sealed record RetrievalMetrics(RetrievalDirection ImageToText, RetrievalDirection TextToImage)
{
    /// <summary>Computes retrieval metrics from a similarity matrix.</summary>
    /// <param name="similarity">Row-major [images, texts] similarities.</param>
    /// <param name="images">Number of images (rows).</param>
    /// <param name="textToImage">For each text (column), the index of its image.</param>
    /// <param name="ks">Cut-offs for Recall@k (default 1, 5, 10).</param>
    public static RetrievalMetrics Compute(ReadOnlySpan<float> similarity, int images, IReadOnlyList<int> textToImage, IReadOnlyList<int>? ks = null)
    {
        ArgumentNullException.ThrowIfNull(textToImage);
        ks ??= [1, 5, 10];
        int t = textToImage.Count;
        if (similarity.Length != (long)images * t) throw new ArgumentException($"similarity has {similarity.Length} values, expected {images} × {t}");
        var captionsOf = Enumerable.Range(0, images).Select(_ => new List<int>()).ToArray();
        for (int j = 0; j < t; j++)
        {
            if ((uint)textToImage[j] >= (uint)images) throw new ArgumentException($"text {j} points at image {textToImage[j]}, outside [0, {images})");
            captionsOf[textToImage[j]].Add(j);
        }

        // Image → text: rank (1-based) of the best-ranked correct caption. Ties count against the query (pessimistic).
        var i2t = new List<int>(images);
        for (int i = 0; i < images; i++)
        {
            if (captionsOf[i].Count == 0) continue;
            var row = similarity.Slice(i * t, t);
            float best = float.NegativeInfinity;
            foreach (var j in captionsOf[i]) best = Math.Max(best, row[j]);
            int rank = 1;
            for (int j = 0; j < t; j++) if (row[j] > best || (row[j] == best && textToImage[j] != i)) rank++;
            i2t.Add(rank);
        }
        // Text → image: rank of the caption's own image among all images.
        var t2i = new List<int>(t);
        for (int j = 0; j < t; j++)
        {
            int target = textToImage[j];
            float s = similarity[target * t + j];
            int rank = 1;
            for (int i = 0; i < images; i++) if (i != target && similarity[i * t + j] >= s) rank++;
            t2i.Add(rank);
        }
        return new RetrievalMetrics(Summarise(i2t, ks), Summarise(t2i, ks));
    }

    static RetrievalDirection Summarise(List<int> ranks, IReadOnlyList<int> ks)
    {
        var recall = ks.ToDictionary(k => k, k => ranks.Count == 0 ? double.NaN : ranks.Count(r => r <= k) / (double)ranks.Count);
        return new RetrievalDirection(ranks.Count, recall, Median(ranks), ranks.Count == 0 ? double.NaN : ranks.Average());
    }

    /// <summary>Median of a list (mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyList<int> values)
    {
        if (values.Count == 0) return double.NaN;
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2.0;
    }
}
