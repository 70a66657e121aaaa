using ClipSharp.Search;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Server;

/// <summary>One ranked result: a row of the index and its cosine similarity to the query.</summary>
internal readonly record struct Hit(int Row, float Score);

/// <summary>
/// One loaded generation of an index file, as the server uses it: the embeddings, the key (path relative to the index
/// folder) and caption of each row, and the model that embeds its queries. Rows whose file lies outside the index
/// folder are never returned. Reference-counted: a rebuilt index replaces it for new requests while requests in flight
/// finish on it; the last one out disposes it.
/// </summary>
internal sealed class ServedIndex
{
    // Rooted for the process: a Scalar that nothing holds may be freed while libtorch still reads it (see TorchScalars).
    static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();
    readonly Tensor? outsideRows; // rows that are never returned (their scores are set to -inf); null when all are served
    readonly Dictionary<string, int> rowByKey;
    int references = 1;

    public ServedIndex(string name, string file, ImageIndex index, QueryEncoder encoder, IReadOnlyDictionary<string, string> captions, long generation,
        ApproximateIndex? approximate = null, (long, long)? annStamp = null)
    {
        Approximate = approximate;
        AnnStamp = annStamp ?? StampOf(ApproximateIndex.PathFor(file));
        Name = name;
        FilePath = Path.GetFullPath(file);
        Folder = Path.GetDirectoryName(FilePath)!;
        RealFolder = ContainedPath.RealPath(Folder);
        Index = index;
        Encoder = encoder;
        Generation = generation;
        Stamp = StampOf(FilePath);
        Keys = new string?[index.Count];
        Captions = new string?[index.Count];
        rowByKey = new Dictionary<string, int>(StringComparer.Ordinal);
        var outside = new List<long>();
        var realDirs = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < index.Count; i++)
        {
            var key = ContainedPath.Key(Folder, index.Files[i].Path);
            // Listed inside the folder but really elsewhere (a link pointing out, or a linked folder): not served either.
            if (key is not null && !ResolvesInside(index.Files[i].Path, realDirs)) key = null;
            Keys[i] = key;
            if (key is null) { outside.Add(i); continue; }
            rowByKey[key] = i;
            if (captions.TryGetValue(index.Files[i].Path, out var c)) Captions[i] = c;
        }
        ServedCount = index.Count - outside.Count;
        CaptionCount = Captions.Count(c => c is not null);
        if (outside.Count > 0) outsideRows = torch.tensor(outside.ToArray());
    }

    /// <summary>Whether a file's real location is inside the real folder (a file that is gone counts as inside: it is answered with 404 later).
    /// Folders are resolved once each, so that a million files cost a million lstat calls, not a realpath each.</summary>
    bool ResolvesInside(string path, Dictionary<string, string> realDirs)
    {
        string dir = Path.GetDirectoryName(path)!;
        try
        {
            if (!realDirs.TryGetValue(dir, out var realDir)) realDirs[dir] = realDir = ContainedPath.RealPath(dir);
            string real = new FileInfo(path).LinkTarget is null ? Path.Combine(realDir, Path.GetFileName(path)) : ContainedPath.RealPath(path);
            return ContainedPath.IsInside(real, RealFolder);
        }
        catch (IOException) { return false; }
    }

    /// <summary>Size and modification time of a file; (-1, 0) when it does not exist.</summary>
    public static (long Length, long Ticks) StampOf(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (info.Length, info.LastWriteTimeUtc.Ticks) : (-1, 0);
    }

    /// <summary>The HNSW graph over this generation's rows (from NAME.index.ann beside the file), or null: exact search.</summary>
    public ApproximateIndex? Approximate { get; }

    /// <summary>The approximate index file's stamp when this generation was loaded (whether or not it was used).</summary>
    public (long Length, long Ticks) AnnStamp { get; }

    public string Name { get; }
    public string FilePath { get; }
    public string Folder { get; }
    public string RealFolder { get; }
    public ImageIndex Index { get; }
    public QueryEncoder Encoder { get; }
    public long Generation { get; }
    public (long Length, long Ticks) Stamp { get; }
    public string?[] Keys { get; }
    public string?[] Captions { get; }
    public int ServedCount { get; }
    public int CaptionCount { get; }
    public int OutsideCount => Index.Count - ServedCount;
    public DateTime LoadedUtc { get; } = DateTime.UtcNow;

    public void AddReference() => Interlocked.Increment(ref references);

    public void Release()
    {
        if (Interlocked.Decrement(ref references) == 0)
        {
            outsideRows?.Dispose();
            Approximate?.Dispose();
            Index.Dispose();
        }
    }

    /// <summary>The row of a requested path, or -1 when the path is not a plain relative path naming a served file.</summary>
    public int Row(string? requested) =>
        ContainedPath.Plain(requested) is { } key && rowByKey.TryGetValue(key, out var row) ? row : -1;

    /// <summary>
    /// The file behind a served row, after checking that its real location (symbolic links resolved) is inside the index
    /// folder's real location; null when it is not, or when the file is gone.
    /// </summary>
    public string? ContainedFile(int row)
    {
        var path = Index.Files[row].Path;
        string real;
        try { real = ContainedPath.RealPath(path); }
        catch (IOException) { return null; }
        return ContainedPath.IsInside(real, RealFolder) && File.Exists(real) ? real : null;
    }

    /// <summary>The stored embedding of a row (normalised).</summary>
    public float[] Embedding(int row)
    {
        using var scope = NewDisposeScope();
        return Index.Embeddings[row].contiguous().data<float>().ToArray();
    }

    /// <summary>
    /// The served rows ranked by cosine similarity to <paramref name="query"/> (normalised), from rank
    /// <paramref name="offset"/>, at most <paramref name="k"/>. With <paramref name="dedupThreshold"/>, a row whose
    /// similarity to a better-ranked kept row reaches the threshold is left out (greedy, in rank order), so pages stay
    /// consistent with each other. <paramref name="more"/> says whether ranks beyond this page exist.
    /// </summary>
    public IReadOnlyList<Hit> Search(float[] query, int offset, int k, float? dedupThreshold, out bool more)
    {
        int n = ServedCount, need = offset + k;
        more = false;
        if (n == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = torch.inference_mode();
        if (Approximate is not null && ApproximateScores(query, need, dedupThreshold is not null) is { } approximate)
        {
            var (candidateScores, candidates) = approximate;
            // Candidates from the graph, scored exactly; the other rows are -inf. Pages the candidates cannot fill are ranked exactly below.
            if (dedupThreshold is not { } t)
            {
                if (candidates >= Math.Min(need, n))
                {
                    more = need < n;
                    return Top(candidateScores, offset, Math.Min(need, n));
                }
            }
            else
            {
                var page = Deduplicated(candidateScores, candidates, offset, need, t, out more);
                if (page.Count == k || candidates >= n)
                {
                    more |= candidates < n && page.Count == k;
                    return page;
                }
            }
        }
        var scores = Index.Embeddings.mv(torch.tensor(query));
        if (outsideRows is not null) scores.index_fill_(0, outsideRows, NegativeInfinity);
        if (dedupThreshold is not { } threshold)
        {
            int m = Math.Min(need, n);
            more = need < n;
            if (m <= offset) return [];
            var (values, indices) = scores.topk(m);
            var v = values.data<float>().ToArray();
            var ix = indices.data<long>().ToArray();
            return Enumerable.Range(offset, m - offset).Select(i => new Hit((int)ix[i], v[i])).ToList();
        }
        return Deduplicated(scores, n, offset, need, threshold, out more);
    }

    static List<Hit> Top(Tensor scores, int offset, int m)
    {
        if (m <= offset) return [];
        var (values, indices) = scores.topk(m);
        var v = values.data<float>().ToArray();
        var ix = indices.data<long>().ToArray();
        return Enumerable.Range(offset, m - offset).Select(i => new Hit((int)ix[i], v[i])).ToList();
    }

    /// <summary>
    /// Scores over all rows that are exact cosines for the served rows the graph returns among its nearest
    /// (enough for <paramref name="need"/> results, more when deduplicating) and -inf elsewhere; null when it returns none.
    /// </summary>
    (Tensor Scores, int Candidates)? ApproximateScores(float[] query, int need, bool dedup)
    {
        long want = Math.Min(Index.Count, (dedup ? need * 4L + 64 : need) + OutsideCount);
        var rows = Approximate!.Search(query, (int)want).Select(h => h.Row).Where(r => Keys[r] is not null).Select(r => (long)r).ToArray();
        if (rows.Length == 0) return null;
        var q = torch.tensor(query);
        var ix = torch.tensor(rows);
        var scores = torch.empty(new long[] { Index.Count }).fill_(NegativeInfinity);
        scores.index_copy_(0, ix, Index.Embeddings.index_select(0, ix).mv(q));
        return (scores, rows.Length);
    }

    List<Hit> Deduplicated(Tensor scores, int n, int offset, int need, float threshold, out bool more)
    {
        var kept = new List<Hit>();
        Tensor? keptRows = null;
        int m = Math.Min(n, need * 4 + 64), scanned = 0;
        var (values, indices) = scores.topk(m);
        while (true)
        {
            var v = values.data<float>().ToArray();
            var ix = indices.data<long>().ToArray();
            while (scanned < m && kept.Count < need)
            {
                int b = Math.Min(256, m - scanned);
                using var block = NewDisposeScope();
                var rows = Index.Embeddings.index_select(0, indices.narrow(0, scanned, b));
                var vsKept = keptRows is null ? null : rows.mm(keptRows.t()).max(1).values.data<float>().ToArray();
                var intra = rows.mm(rows.t()).data<float>().ToArray();
                var keptHere = new List<int>();
                for (int j = 0; j < b && kept.Count < need; j++)
                {
                    if (vsKept is not null && vsKept[j] >= threshold) continue;
                    if (keptHere.Any(i => intra[i * b + j] >= threshold)) continue;
                    keptHere.Add(j);
                    kept.Add(new Hit((int)ix[scanned + j], v[scanned + j]));
                }
                if (keptHere.Count > 0)
                {
                    var add = rows.index_select(0, torch.tensor(keptHere.Select(j => (long)j).ToArray()));
                    var next = keptRows is null ? add : torch.cat([keptRows, add], 0);
                    keptRows?.Dispose();
                    keptRows = next.MoveToOuterDisposeScope();
                }
                scanned += b;
            }
            if (kept.Count >= need || m == n) break;
            // Not enough distinct results among the first m: rank everything (stable) and go on from where we were.
            m = n;
            (values, indices) = scores.sort(descending: true, stable: true);
            values = values.narrow(0, 0, n);
            indices = indices.narrow(0, 0, n);
        }
        more = kept.Count >= need && scanned < n;
        return kept.Skip(offset).ToList();
    }
}
