namespace ClipSharp.Training.Data;

/// <summary>
/// The deterministic order in which training samples are drawn: at every position a source is chosen with
/// probability proportional to its weight (a hash of seed and position), and each source is read through its
/// own sequence of seeded random permutations, one per pass. The plan depends only on the seed, so a resumed
/// run re-creates it and skips to the saved position without touching any image.
/// </summary>
internal sealed class MixPlan
{
    private readonly IReadOnlyList<PairSource> sources;
    private readonly double[] cumulative;
    private readonly ulong seed;
    private readonly long[] consumed;
    private readonly int[][] permutation;
    private readonly long[] permutationEpoch;

    /// <summary>Creates the plan at position 0.</summary>
    public MixPlan(IReadOnlyList<PairSource> sources, int seed)
    {
        if (sources.Count == 0) throw new ArgumentException("no training sources");
        this.sources = sources;
        this.seed = (ulong)(uint)seed;
        double total = sources.Sum(s => s.Weight);
        cumulative = new double[sources.Count];
        double acc = 0;
        for (int i = 0; i < sources.Count; i++) { acc += sources[i].Weight / total; cumulative[i] = acc; }
        consumed = new long[sources.Count];
        permutation = new int[sources.Count][];
        permutationEpoch = Enumerable.Repeat(-1L, sources.Count).ToArray();
    }

    /// <summary>Samples drawn so far (the data position saved in checkpoints).</summary>
    public long Position { get; private set; }

    /// <summary>Advances to <paramref name="position"/> (from the current one) without producing samples.</summary>
    public void SkipTo(long position)
    {
        if (position < Position) throw new ArgumentException("a plan only moves forward");
        while (Position < position) Next();
    }

    /// <summary>The next (source, index) and the position it was drawn at.</summary>
    public (int Source, int Index, long Position) Next()
    {
        long pos = Position++;
        int s = 0;
        if (sources.Count > 1)
        {
            double u = (Hash(seed, 0x5EED, (ulong)pos) >> 11) * (1.0 / (1UL << 53));
            while (s < cumulative.Length - 1 && u >= cumulative[s]) s++;
        }
        int n = sources[s].Samples.Count;
        long k = consumed[s]++;
        long epoch = k / n;
        if (permutationEpoch[s] != epoch)
        {
            var rng = new Random((int)(Hash(seed, (ulong)s + 1, (ulong)epoch) & 0x7FFFFFFF));
            var perm = permutation[s] ?? new int[n];
            for (int i = 0; i < n; i++) perm[i] = i;
            rng.Shuffle(perm);
            permutation[s] = perm;
            permutationEpoch[s] = epoch;
        }
        return (s, permutation[s][(int)(k % n)], pos);
    }

    /// <summary>A 64-bit mix of three values (splitmix64 finaliser), used for per-position randomness.</summary>
    public static ulong Hash(ulong a, ulong b, ulong c)
    {
        ulong x = a * 0x9E3779B97F4A7C15UL ^ (b + 0x632BE59BD9B4E019UL) * 0xBF58476D1CE4E5B9UL ^ (c + 0x2545F4914F6CDD1DUL) * 0x94D049BB133111EBUL;
        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 27; x *= 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
