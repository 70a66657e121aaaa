using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using Cloud.Unum.USearch;
using static TorchSharp.torch;

namespace ClipSharp.Search;

/// <summary>How the approximate index stores its copy of the vectors (the graph is searched on these; results are
/// re-scored on the exact index's float32 rows).</summary>
public enum AnnStorage
{
    /// <summary>Half precision: half the memory of float32, scores within about 1e-3.</summary>
    F16,
    /// <summary>Full precision.</summary>
    F32,
    /// <summary>8-bit integers: a quarter of the memory; coarser ranking inside the graph.</summary>
    I8,
}

/// <summary>Settings of the HNSW graph (Malkov &amp; Yashunin's hierarchical navigable small world) the approximate index builds.</summary>
public sealed record AnnOptions
{
    /// <summary>Neighbours kept per node and layer (HNSW's M; layer 0 keeps twice as many). More: better recall, more memory, slower build.</summary>
    public int Connectivity { get; init; } = 32;

    /// <summary>Candidates considered when a vector is inserted (efConstruction). More: a better graph, slower build.</summary>
    public int ExpansionAdd { get; init; } = 256;

    /// <summary>Candidates kept while searching (ef), recorded in the file as the default for queries; at least k is used.</summary>
    public int ExpansionSearch { get; init; } = 256;

    /// <summary>Storage of the graph's vectors.</summary>
    public AnnStorage Storage { get; init; } = AnnStorage.F16;

    /// <summary>Threads adding vectors (0: one per core).</summary>
    public int Threads { get; init; }
}

/// <summary>An approximate index file that does not belong to the exact index beside it (built from other embeddings), or is damaged.</summary>
public sealed class StaleApproximateIndexException(string message) : ClipSharpException(message);

/// <summary>
/// Approximate nearest-neighbour search over an <see cref="ImageIndex"/>'s embeddings for large collections: an HNSW graph
/// built by USearch (the Cloud.Unum.USearch package), kept in its own file beside the exact index
/// (<c>photos.index.ann</c> beside <c>photos.index.safetensors</c>) and memory-mapped when opened. The file records a
/// SHA-256 digest of the embeddings it was built from; opened with any other exact index it is refused. Candidates
/// found in the graph are re-scored on the exact index's float32 rows, so scores are exact cosines and only the set of
/// results is approximate. Searching is thread-safe.
/// </summary>
public sealed unsafe class ApproximateIndex : IDisposable
{
    /// <summary>File name suffix: <c>NAME.index.ann</c> beside <c>NAME.index.safetensors</c>.</summary>
    public const string FileExtension = ".ann";

    const int FormatVersion = 1;
    static readonly byte[] Magic = "CLIPANN1"u8.ToArray();
    const int TrailerBytes = 16; // header length (u64 little-endian) + magic

    IntPtr handle;
    readonly MemoryMappedFile? mapped;
    readonly MemoryMappedViewAccessor? view;
    readonly SemaphoreSlim searchers;
    int expansionSearch;

    ApproximateIndex(IntPtr handle, long rows, int dim, string digest, AnnOptions options, MemoryMappedFile? mapped = null, MemoryMappedViewAccessor? view = null)
    {
        this.handle = handle;
        Count = rows;
        Dim = dim;
        Digest = digest;
        Options = options;
        expansionSearch = options.ExpansionSearch;
        this.mapped = mapped;
        this.view = view;
        // USearch keeps one search context per hardware thread; never ask for more at once.
        searchers = new SemaphoreSlim(Math.Max(1, Environment.ProcessorCount));
    }

    /// <summary>Vectors in the graph (rows of the exact index, keyed by row number).</summary>
    public long Count { get; }

    /// <summary>Vector width.</summary>
    public int Dim { get; }

    /// <summary>SHA-256 (hex) of the embeddings the graph was built from (<see cref="DigestOf(ImageIndex)"/>).</summary>
    public string Digest { get; }

    /// <summary>The settings it was built with.</summary>
    public AnnOptions Options { get; }

    /// <summary>Bytes the native index holds (graph and vectors; for a memory-mapped file, what it would take in memory).</summary>
    public long MemoryBytes
    {
        get
        {
            var n = USearchNative.usearch_memory_usage(handle, out var e);
            USearchNative.Check(e, "usearch_memory_usage");
            return (long)n;
        }
    }

    /// <summary>Candidates kept while searching (ef; at least k is used). Starts at the value recorded in the file.</summary>
    public int ExpansionSearch
    {
        get => expansionSearch;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            USearchNative.usearch_change_expansion_search(handle, (UIntPtr)value, out var e);
            USearchNative.Check(e, "usearch_change_expansion_search");
            expansionSearch = value;
        }
    }

    /// <summary>The approximate index file that belongs beside an exact index file.</summary>
    public static string PathFor(string indexPath)
    {
        ArgumentNullException.ThrowIfNull(indexPath);
        string full = Path.GetFullPath(indexPath);
        return (full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? full[..^".safetensors".Length] : full) + FileExtension;
    }

    /// <summary>SHA-256 over the shape and the float32 bytes of an index's embeddings: what ties an approximate index to the exact one.</summary>
    public static string DigestOf(ImageIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        return DigestOf(index.Embeddings);
    }

    internal static string DigestOf(Tensor embeddings)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> shape = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(shape, embeddings.shape[0]);
        BinaryPrimitives.WriteInt64LittleEndian(shape[8..], embeddings.shape[1]);
        hash.AppendData(shape);
        ForEachChunk(embeddings, (p, first, count) => hash.AppendData(new ReadOnlySpan<byte>(p, checked((int)(count * embeddings.shape[1] * sizeof(float))))));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    delegate void ChunkAction(float* rows, long first, long count);

    /// <summary>Walks a contiguous [N, D] float32 tensor in blocks of rows small enough for a span.</summary>
    static void ForEachChunk(Tensor embeddings, ChunkAction action)
    {
        if (embeddings.dtype != ScalarType.Float32 || embeddings.dim() != 2) throw new ArgumentException("embeddings must be a float32 [N, D] tensor");
        long n = embeddings.shape[0], d = embeddings.shape[1];
        long chunk = Math.Max(1, (256L << 20) / Math.Max(1, d * sizeof(float)));
        for (long first = 0; first < n; first += chunk)
        {
            long count = Math.Min(chunk, n - first);
            using var scope = NewDisposeScope();
            var rows = embeddings.narrow(0, first, count).contiguous();
            fixed (byte* p = TensorBytes.Span(rows)) action((float*)p, first, count);
        }
    }

    /// <summary>Builds the graph over every row of <paramref name="index"/> (row numbers are the keys), adding vectors on several threads.</summary>
    /// <param name="index">The exact index.</param>
    /// <param name="options">Graph settings (default: <see cref="AnnOptions"/>' defaults).</param>
    /// <param name="progress">Called now and then with (rows added, rows in all).</param>
    /// <param name="cancellationToken">Stops the build.</param>
    public static ApproximateIndex Build(ImageIndex index, AnnOptions? options = null, Action<long, long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(index);
        var ann = Create(index.Count, (int)index.Dim, options ?? new AnnOptions(), DigestOf(index));
        try
        {
            ForEachChunk(index.Embeddings, (p, first, count) => ann.Add(p, first, count, index.Count, progress, cancellationToken));
            return ann;
        }
        catch
        {
            ann.Dispose();
            throw;
        }
    }

    /// <summary>An empty graph with room for <paramref name="capacity"/> vectors (reserved once: growing it while adding reallocates).</summary>
    internal static ApproximateIndex Create(long capacity, int dim, AnnOptions options, string digest)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Connectivity, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ExpansionAdd, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ExpansionSearch, 1);
        var init = new IndexOptions
        {
            // On unit vectors the inner product ranks as the cosine does, without normalising again in every distance.
            metric_kind = options.Storage == AnnStorage.I8 ? MetricKind.Cos : MetricKind.Ip,
            quantization = Kind(options.Storage),
            dimensions = (ulong)dim,
            connectivity = (ulong)options.Connectivity,
            expansion_add = (ulong)options.ExpansionAdd,
            expansion_search = (ulong)options.ExpansionSearch,
            multi = false,
        };
        var h = USearchNative.usearch_init(ref init, out var e);
        USearchNative.Check(e, "usearch_init");
        var ann = new ApproximateIndex(h, capacity, dim, digest, options);
        USearchNative.usearch_reserve(h, (UIntPtr)Math.Max(1, capacity), out e);
        if (e != IntPtr.Zero) { ann.Dispose(); USearchNative.Check(e, $"usearch_reserve({capacity})"); }
        return ann;
    }

    static ScalarKind Kind(AnnStorage s) => s switch
    {
        AnnStorage.F32 => ScalarKind.Float32,
        AnnStorage.I8 => ScalarKind.Int8,
        _ => ScalarKind.Float16,
    };

    long added;

    /// <summary>Adds <paramref name="count"/> contiguous rows with keys first, first+1, …, on up to <see cref="AnnOptions.Threads"/> threads.</summary>
    internal void Add(float* rows, long first, long count, long total, Action<long, long>? progress, CancellationToken cancellationToken)
    {
        int threads = Math.Min(Options.Threads > 0 ? Options.Threads : Environment.ProcessorCount, Environment.ProcessorCount);
        long step = Math.Max(1, total / 100);
        var h = handle;
        int dim = Dim;
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads), CancellationToken = cancellationToken }, i =>
            {
                USearchNative.usearch_add(h, (ulong)(first + i), rows + i * dim, ScalarKind.Float32, out var e);
                USearchNative.Check(e, $"usearch_add(row {first + i})");
                long done = Interlocked.Increment(ref added);
                if (progress is not null && (done % step == 0 || done == total)) progress(done, total);
            });
        }
        catch (AggregateException ae) when (ae.InnerExceptions.Count > 0 && ae.InnerExceptions[0] is ClipSharpException ce)
        {
            throw ce;
        }
    }

    /// <summary>Adds the rows of a float32 [n, D] tensor with keys first, first+1, … (see <see cref="Add"/>).</summary>
    internal void AddRows(Tensor rows, long first, long total, Action<long, long>? progress, CancellationToken cancellationToken = default) =>
        ForEachChunk(rows, (p, f, count) => Add(p, first + f, count, total, progress, cancellationToken));

    /// <summary>Up to <paramref name="k"/> rows nearest to a normalised query, best first, with the graph's own score (1 − distance: the cosine on its stored vectors).</summary>
    public (int Row, float Score)[] Search(ReadOnlySpan<float> query, int k)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (query.Length != Dim) throw new ArgumentException($"query has {query.Length} values; this index holds {Dim}-wide vectors");
        if (Count == 0) return [];
        k = (int)Math.Min(k, Count);
        var keys = new ulong[k];
        var distances = new float[k];
        UIntPtr found;
        searchers.Wait();
        try
        {
            fixed (float* q = query)
            fixed (ulong* kp = keys)
            fixed (float* dp = distances)
            {
                found = USearchNative.usearch_search(handle, q, ScalarKind.Float32, (UIntPtr)k, kp, dp, out var e);
                USearchNative.Check(e, "usearch_search");
            }
        }
        finally { searchers.Release(); }
        var hits = new (int, float)[(int)found];
        for (int i = 0; i < hits.Length; i++) hits[i] = ((int)keys[i], 1f - distances[i]);
        return hits;
    }

    /// <summary>
    /// The <paramref name="top"/> images of <paramref name="index"/> most similar to a normalised query, found in the graph
    /// and scored exactly on the index's rows (the same scores <see cref="ImageIndex.Search"/> gives), best first.
    /// </summary>
    public IReadOnlyList<SearchHit> Search(ImageIndex index, Tensor query, int top = 10)
    {
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(query);
        if (index.Count != Count || index.Dim != Dim) throw new ArgumentException($"this approximate index covers {Count}×{Dim}, the index holds {index.Count}×{index.Dim}");
        if (query.dim() != 1 || query.shape[0] != Dim)
            throw new ArgumentException($"query has shape [{string.Join(", ", query.shape)}]; this index holds {Dim}-wide embeddings");
        using var scope = NewDisposeScope();
        var q = query.to(ScalarType.Float32).contiguous();
        var rows = Search(q.data<float>().ToArray(), top).Select(h => h.Row).ToArray();
        var scores = Rescore(index.Embeddings, q, rows);
        return rows.Select((r, i) => (r, s: scores[i])).OrderByDescending(x => x.s).ThenBy(x => x.r)
            .Select(x => new SearchHit(index.Files[x.r].Path, x.s)).ToList();
    }

    /// <summary>Exact cosines of a normalised query with the given rows of a normalised [N, D] matrix.</summary>
    internal static float[] Rescore(Tensor embeddings, Tensor query, IReadOnlyList<int> rows)
    {
        if (rows.Count == 0) return [];
        using var scope = NewDisposeScope();
        var ix = TorchSharp.torch.tensor(rows.Select(r => (long)r).ToArray());
        return embeddings.index_select(0, ix).mv(query.to(ScalarType.Float32)).data<float>().ToArray();
    }

    /// <summary>Writes the file atomically (a temporary file beside it, then a rename over the old one): USearch's own
    /// serialisation followed by a JSON header naming the digest of the embeddings it was built from.</summary>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (view is not null) throw new InvalidOperationException("an approximate index opened from a file is read-only; build one to save");
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            USearchNative.usearch_save(handle, tmp, out var e);
            USearchNative.Check(e, $"{path}: usearch_save");
            var header = new JsonObject
            {
                ["format"] = "clipsharp.ann",
                ["version"] = FormatVersion,
                ["library"] = "usearch",
                ["rows"] = Count,
                ["dim"] = Dim,
                ["embeddings_sha256"] = Digest,
                ["storage"] = Options.Storage.ToString().ToLowerInvariant(),
                ["connectivity"] = Options.Connectivity,
                ["expansion_add"] = Options.ExpansionAdd,
                ["expansion_search"] = ExpansionSearch,
            };
            var json = Encoding.UTF8.GetBytes(header.ToJsonString());
            using (var fs = new FileStream(tmp, FileMode.Append, FileAccess.Write))
            {
                fs.Write(json);
                Span<byte> trailer = stackalloc byte[TrailerBytes];
                BinaryPrimitives.WriteUInt64LittleEndian(trailer, (ulong)json.Length);
                Magic.CopyTo(trailer[8..]);
                fs.Write(trailer);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>
    /// Opens (memory-maps) the approximate index at <paramref name="path"/> for <paramref name="index"/>.
    /// </summary>
    /// <exception cref="StaleApproximateIndexException">The file was built from other embeddings than <paramref name="index"/>'s, or is not an approximate index; the message names the file and says what to do.</exception>
    public static ApproximateIndex Open(string path, ImageIndex index)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(index);
        if (!File.Exists(path)) throw new FileNotFoundException($"approximate index not found: {path}", path);
        // One open file for the header and the mapping, so that a file renamed over this one meanwhile is not mixed in.
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        try { return Open(fs, path, index); }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    static ApproximateIndex Open(FileStream fs, string path, ImageIndex index)
    {
        var (header, blobLength) = ReadHeader(fs, path);
        string digest;
        long rows;
        int dim;
        AnnOptions options;
        try
        {
            int version = header["version"]!.GetValue<int>();
            if (header["format"]?.GetValue<string>() != "clipsharp.ann" || version != FormatVersion)
                throw new StaleApproximateIndexException($"{path}: approximate index format {version}; this ClipSharp reads format {FormatVersion}; rebuild it with clip index --ann");
            digest = header["embeddings_sha256"]!.GetValue<string>();
            rows = header["rows"]!.GetValue<long>();
            dim = header["dim"]!.GetValue<int>();
            options = new AnnOptions
            {
                Connectivity = header["connectivity"]!.GetValue<int>(),
                ExpansionAdd = header["expansion_add"]!.GetValue<int>(),
                ExpansionSearch = header["expansion_search"]!.GetValue<int>(),
                Storage = Enum.Parse<AnnStorage>(header["storage"]!.GetValue<string>(), ignoreCase: true),
            };
        }
        catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException or ArgumentException)
        {
            throw new StaleApproximateIndexException($"{path}: damaged approximate-index header ({e.Message}); rebuild it with clip index --ann");
        }
        if (rows != index.Count || dim != index.Dim || digest != DigestOf(index))
            throw new StaleApproximateIndexException(
                $"{path} was built from other embeddings ({rows} rows, digest {Short(digest)}) than the index beside it now holds ({index.Count} rows, digest {Short(DigestOf(index))}); " +
                "rebuild it with clip index --ann");

        var mmf = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        MemoryMappedViewAccessor? accessor = null;
        IntPtr h = IntPtr.Zero;
        try
        {
            accessor = mmf.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            accessor.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            var init = new IndexOptions();
            h = USearchNative.usearch_init(ref init, out var e);
            USearchNative.Check(e, "usearch_init");
            USearchNative.usearch_view_buffer(h, (IntPtr)(p + accessor.PointerOffset), (UIntPtr)blobLength, out e);
            if (e != IntPtr.Zero) throw new StaleApproximateIndexException($"{path}: not readable by USearch ({System.Runtime.InteropServices.Marshal.PtrToStringUTF8(e)}); rebuild it with clip index --ann");
            var size = (long)USearchNative.usearch_size(h, out e);
            var d = (long)USearchNative.usearch_dimensions(h, out e);
            if (size != rows || d != dim) throw new StaleApproximateIndexException($"{path}: holds {size}×{d} vectors, its header says {rows}×{dim}; rebuild it with clip index --ann");
            var ann = new ApproximateIndex(h, rows, dim, digest, options, mmf, accessor);
            h = IntPtr.Zero;
            ann.ExpansionSearch = options.ExpansionSearch;
            return ann;
        }
        catch
        {
            if (h != IntPtr.Zero) USearchNative.usearch_free(h, out _);
            if (accessor is not null)
            {
                accessor.SafeMemoryMappedViewHandle.ReleasePointer();
                accessor.Dispose();
            }
            mmf.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The approximate index beside <paramref name="indexPath"/> when there is one and it belongs to <paramref name="index"/>;
    /// null otherwise, with <paramref name="note"/> saying why it is not used (null when there is no file).
    /// </summary>
    public static ApproximateIndex? OpenBeside(string indexPath, ImageIndex index, out string? note)
    {
        note = null;
        string path = PathFor(indexPath);
        if (!File.Exists(path)) return null;
        try { return Open(path, index); }
        catch (Exception e) when (e is StaleApproximateIndexException or IOException)
        {
            note = e.Message + "; searching exactly meanwhile";
            return null;
        }
    }

    static string Short(string digest) => digest.Length > 12 ? digest[..12] + "…" : digest;

    static (JsonObject Header, long BlobLength) ReadHeader(FileStream fs, string path)
    {
        long length = fs.Length;
        Span<byte> trailer = stackalloc byte[TrailerBytes];
        if (length < TrailerBytes) throw new StaleApproximateIndexException($"{path}: not a ClipSharp approximate index ({length} bytes); rebuild it with clip index --ann");
        fs.Seek(length - TrailerBytes, SeekOrigin.Begin);
        fs.ReadExactly(trailer);
        ulong jsonLength = BinaryPrimitives.ReadUInt64LittleEndian(trailer);
        if (!trailer[8..].SequenceEqual(Magic) || jsonLength == 0 || jsonLength > 1 << 20 || (long)jsonLength > length - TrailerBytes)
            throw new StaleApproximateIndexException($"{path}: not a ClipSharp approximate index (no header at its end); rebuild it with clip index --ann");
        var json = new byte[jsonLength];
        long blob = length - TrailerBytes - (long)jsonLength;
        fs.Seek(blob, SeekOrigin.Begin);
        fs.ReadExactly(json);
        try { return (JsonNode.Parse(json)!.AsObject(), blob); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException)
        {
            throw new StaleApproximateIndexException($"{path}: damaged approximate-index header ({e.Message}); rebuild it with clip index --ann");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        var h = Interlocked.Exchange(ref handle, IntPtr.Zero);
        if (h == IntPtr.Zero) return;
        USearchNative.usearch_free(h, out _);
        if (view is not null)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        mapped?.Dispose();
        searchers.Dispose();
    }
}
