namespace ClipSharp.Modeling;

/// <summary>
/// Groups a batch of token sequences by length for the causal text tower. Every text only needs the positions up to
/// its end-of-text token, so a group can stop at its own longest text; more groups skip more padding but each group
/// costs a pass of small kernels through every layer. The plan minimises the estimated cost
/// Σ over groups of (texts · longest length · (1 + longest / (12 · width)) + <see cref="GroupOverheadTokens(long)"/>):
/// the dense work grows with tokens, attention adds a share growing with the length, and a group's fixed cost is
/// expressed in tokens. Exact dynamic programming over the distinct lengths (at most the context length, 77).
/// </summary>
internal static class TextLengthBuckets
{
    /// <summary>One group: the texts' rows in the batch (ascending) and the positions to run (its longest text).</summary>
    /// <param name="Length">Positions to run, the largest length in the group.</param>
    /// <param name="Rows">Row indices in the batch, ascending.</param>
    internal sealed record Bucket(long Length, long[] Rows);

    /// <summary>
    /// Fixed cost of one more group, in tokens, for a text tower of width 256; <see cref="GroupOverheadTokens(long)"/>
    /// scales it by (256 / width)², because a token's work grows with width² while a group's fixed cost (kernel launches,
    /// small-matrix inefficiency) hardly does. Chosen on this project's 2-core machine, batch 128, forward and backward
    /// in bf16: small CLIP (6 × 256), end-of-text positions spread over 5–76: 16 gave 17 groups (567 ms), 64 gave 7
    /// (461 ms), 200 gave 4 (534 ms), one group 690–820 ms. cpu-vit-mini (4 × 128), captions up to 30 tokens: 64 gave 5
    /// groups and 104 ms against 76 ms for one group; with the width scaling (256 tokens there) it makes 3 groups, 68 ms
    /// against 67.
    /// </summary>
    public const int GroupOverheadTokensAtWidth256 = 64;

    /// <summary>Fixed cost of one more group, in tokens, for a text tower of the given width.</summary>
    public static double GroupOverheadTokens(long width) => GroupOverheadTokensAtWidth256 * Math.Pow(256.0 / Math.Max(1, width), 2);

    /// <summary>Plans the groups for texts whose lengths (end-of-text position + 1) are given.</summary>
    /// <param name="lengths">Length of each text in the batch, ≥ 1.</param>
    /// <param name="width">Transformer width (weighs the attention term).</param>
    /// <returns>Groups covering every row once, shortest first; a single group when splitting does not pay.</returns>
    public static IReadOnlyList<Bucket> Plan(IReadOnlyList<long> lengths, long width)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        if (lengths.Count == 0) return [];
        var counts = new SortedDictionary<long, int>();
        foreach (var l in lengths)
        {
            if (l < 1) throw new ArgumentOutOfRangeException(nameof(lengths), $"text length {l} is not positive");
            counts[l] = counts.TryGetValue(l, out var c) ? c + 1 : 1;
        }
        long[] values = [.. counts.Keys];
        int m = values.Length;
        var prefix = new long[m + 1];
        for (int i = 0; i < m; i++) prefix[i + 1] = prefix[i] + counts[values[i]];

        double overhead = GroupOverheadTokens(width);
        double Cost(int first, int last)
        {
            double longest = values[last];
            return (prefix[last + 1] - prefix[first]) * longest * (1 + longest / (12.0 * width)) + overhead;
        }

        // best[j]: cheapest cover of values[0..j); from[j]: where its last group starts.
        var best = new double[m + 1];
        var from = new int[m + 1];
        for (int j = 1; j <= m; j++)
        {
            best[j] = double.PositiveInfinity;
            for (int i = 0; i < j; i++)
            {
                double c = best[i] + Cost(i, j - 1);
                if (c < best[j]) { best[j] = c; from[j] = i; }
            }
        }
        var cuts = new List<(int First, int Last)>();
        for (int j = m; j > 0; j = from[j]) cuts.Add((from[j], j - 1));
        cuts.Reverse();

        var result = new List<Bucket>(cuts.Count);
        foreach (var (first, last) in cuts)
        {
            long lo = values[first], hi = values[last];
            var rows = new List<long>();
            for (int r = 0; r < lengths.Count; r++)
                if (lengths[r] >= lo && lengths[r] <= hi) rows.Add(r);
            result.Add(new Bucket(hi, [.. rows]));
        }
        return result;
    }
}
