using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Search;

/// <summary>An image file as indexed: its path and the size and modification time it had when it was embedded.</summary>
/// <param name="Path">Full path.</param>
/// <param name="Size">Bytes.</param>
/// <param name="ModifiedTicks">Last write time (UTC ticks).</param>
public sealed record IndexedFile(string Path, long Size, long ModifiedTicks)
{
    /// <summary>The file's current state on disk, or null when it no longer exists.</summary>
    public static IndexedFile? Stat(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? new IndexedFile(info.FullName, info.Length, info.LastWriteTimeUtc.Ticks) : null;
    }
}

/// <summary>One search result.</summary>
/// <param name="Path">The image file.</param>
/// <param name="Score">Cosine similarity between the query and the image embedding.</param>
public sealed record SearchHit(string Path, float Score);

/// <summary>What <see cref="ImageIndex.Build"/> did.</summary>
/// <param name="Encoded">Images embedded in this build.</param>
/// <param name="Reused">Rows taken over from the previous index (file unchanged, same model).</param>
/// <param name="Removed">Files of the previous index that no longer exist or were not listed.</param>
/// <param name="Skipped">Files that could not be read or decoded, with the reason.</param>
public sealed record IndexBuildReport(int Encoded, int Reused, int Removed, IReadOnlyList<SkippedItem> Skipped);

/// <summary>
/// Semantic image search, the retrieval use of CLIP: every image of a collection embedded once by the image tower and
/// L2-normalised; a query (text through the text tower, or another image) is embedded the same way and the images
/// are ranked by cosine similarity. The index is a safetensors file (<c>embeddings</c> [N, D] float32 plus a JSON
/// header with the files and the model's fingerprint). Rebuilding with the previous index re-embeds only new and
/// changed files. A query with a different model than the one that built the index is refused, since its
/// embeddings would live in another space.
/// </summary>
public sealed class ImageIndex : IDisposable
{
    /// <summary>Metadata key of the JSON header in the index file.</summary>
    public const string MetadataKey = "clipsharp.image_index";

    const int FormatVersion = 1;
    readonly Tensor embeddings;

    ImageIndex(Tensor embeddings, IReadOnlyList<IndexedFile> files, string modelFingerprint, string? modelPath, string? configPath = null)
    {
        ConfigPath = configPath;
        this.embeddings = embeddings;
        Files = files;
        ModelFingerprint = modelFingerprint;
        ModelPath = modelPath;
    }

    /// <summary>The indexed files, in row order.</summary>
    public IReadOnlyList<IndexedFile> Files { get; }

    /// <summary>Identity of the model that embedded the images (<see cref="Fingerprint"/>).</summary>
    public string ModelFingerprint { get; }

    /// <summary>The checkpoint path the index was built from (a default for queries), if known.</summary>
    public string? ModelPath { get; }

    /// <summary>The architecture config given with the checkpoint at build time (<c>--config</c>), if any.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>Number of images.</summary>
    public int Count => Files.Count;

    /// <summary>Embedding width.</summary>
    public long Dim => embeddings.shape[1];

    /// <summary>The L2-normalised embeddings [N, D] (owned by the index).</summary>
    public Tensor Embeddings => embeddings;

    /// <summary>
    /// Identity of what turns files into embeddings: SHA-256 over the config, the image normalisation and every
    /// state_dict tensor's bytes (about a second for ViT-B/32). Independent of the checkpoint's file name, format and location.
    /// </summary>
    public static string Fingerprint(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes(model.Config.ToJson()));
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{model.Normalisation}")));
        using var scope = NewDisposeScope();
        foreach (var (name, t) in model.state_dict())
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            var c = t.detach().contiguous();
            hash.AppendData(TensorBytes.Span(c));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Image files under the given files and folders (folders recursively), full paths, in ordinal order, without duplicates.</summary>
    /// <exception cref="FileNotFoundException">A path does not exist.</exception>
    public static IReadOnlyList<string> ListFiles(IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var p in paths)
        {
            if (Directory.Exists(p)) foreach (var f in DatasetFiles.ListImages(p)) set.Add(Path.GetFullPath(f));
            else if (File.Exists(p)) set.Add(Path.GetFullPath(p));
            else throw new FileNotFoundException($"not found: {p}", p);
        }
        return set.ToList();
    }

    /// <summary>
    /// Embeds <paramref name="files"/> with the image tower. Rows of <paramref name="previous"/> are reused for files
    /// whose size and modification time are unchanged when it was built by the same model; files that cannot be decoded
    /// are skipped and reported, never fatal.
    /// </summary>
    public static ImageIndex Build(ClipModel model, IReadOnlyList<string> files, out IndexBuildReport report, ImageIndex? previous = null,
        string? modelPath = null, FeatureExtractionOptions? options = null, ClipImagePreprocessor? preprocessor = null, CancellationToken cancellationToken = default,
        string? configPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(files);
        string fingerprint = Fingerprint(model);
        var reusable = new Dictionary<string, int>(StringComparer.Ordinal);
        if (previous is not null && previous.ModelFingerprint == fingerprint)
            for (int i = 0; i < previous.Count; i++) reusable[previous.Files[i].Path] = i;

        var stats = new List<IndexedFile?>(files.Count);
        var toEncode = new List<ImageInput>();
        var skipped = new List<SkippedItem>();
        int reused = 0;
        foreach (var f in files)
        {
            var st = IndexedFile.Stat(f);
            stats.Add(st);
            if (st is null) { skipped.Add(new SkippedItem(f, "file not found")); continue; }
            if (reusable.TryGetValue(st.Path, out var row) && previous!.Files[row] == st) { reused++; continue; }
            toEncode.Add(new ImageInput(st.Path, st.Path));
        }

        ImageFeatures? fresh = null;
        if (toEncode.Count > 0)
        {
            model.eval();
            preprocessor ??= model.CreatePreprocessor();
            fresh = FeatureExtractor.Extract(model, preprocessor, toEncode, toEncode.Count, options, cancellationToken);
            skipped.AddRange(fresh.Skipped);
        }
        var freshRow = new Dictionary<string, int>(StringComparer.Ordinal);
        if (fresh is not null) for (int i = 0; i < fresh.Count; i++) freshRow[fresh.Ids[i]] = i;

        using var scope = NewDisposeScope();
        var kept = new List<IndexedFile>();
        var rows = new List<Tensor>();
        Tensor? freshNormalised = fresh is null || fresh.Count == 0 ? null : Normalise(fresh.ToTensor());
        foreach (var st in stats)
        {
            if (st is null) continue;
            if (freshRow.TryGetValue(st.Path, out var fr)) { rows.Add(freshNormalised![fr]); kept.Add(st); }
            else if (reusable.TryGetValue(st.Path, out var pr) && previous!.Files[pr] == st) { rows.Add(previous.embeddings[pr]); kept.Add(st); }
        }
        long dim = model.Config.EmbedDim;
        var all = rows.Count == 0 ? torch.zeros(0, dim) : torch.stack(rows).contiguous();
        var keptPaths = kept.Select(k => k.Path).ToHashSet(StringComparer.Ordinal);
        int removed = previous is null ? 0 : previous.Files.Count(f => !keptPaths.Contains(f.Path));
        report = new IndexBuildReport(fresh?.Count ?? 0, reused, removed, skipped);
        return new ImageIndex(all.DetachFromDisposeScope(), kept, fingerprint, modelPath is null ? null : Path.GetFullPath(modelPath),
            configPath is null ? null : Path.GetFullPath(configPath));
    }

    static Tensor Normalise(Tensor x) => nn.functional.normalize(x, p: 2, dim: 1);

    /// <summary>Embeds a text query with the text tower (as given, or filled into <paramref name="template"/>), normalised [D].</summary>
    public Tensor EmbedText(ClipModel model, ClipTokenizer tokenizer, string query, string? template = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        CheckModel(model);
        using var scope = NewDisposeScope();
        string text = template is null ? query : ZeroShot.PromptSets.Fill(template, query);
        var f = model.EncodeTexts([text], tokenizer);
        return Normalise(f)[0].MoveToOuterDisposeScope();
    }

    /// <summary>Embeds an image query with the image tower, normalised [D].</summary>
    /// <exception cref="ImageDecodeException">The file cannot be decoded.</exception>
    public Tensor EmbedImage(ClipModel model, string imagePath)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckModel(model);
        using var scope = NewDisposeScope();
        var f = model.EncodeImages([imagePath]);
        return Normalise(f)[0].MoveToOuterDisposeScope();
    }

    /// <summary>The <paramref name="top"/> images most similar to a normalised query embedding [D], best first.</summary>
    public IReadOnlyList<SearchHit> Search(Tensor query, int top = 10)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        if (query.dim() != 1 || query.shape[0] != Dim)
            throw new ArgumentException($"query has shape [{string.Join(", ", query.shape)}]; this index holds {Dim}-wide embeddings");
        if (Count == 0) return [];
        using var scope = NewDisposeScope();
        var scores = embeddings.mv(query.to(ScalarType.Float32));
        var (values, indices) = scores.topk(Math.Min(top, Count));
        var v = values.data<float>().ToArray();
        var ix = indices.data<long>().ToArray();
        return ix.Select((row, i) => new SearchHit(Files[(int)row].Path, v[i])).ToList();
    }

    /// <summary>
    /// Throws when <paramref name="model"/> is not the model that built this index. The check hashes the weights once per
    /// model object; later calls with the same object are free (change its weights afterwards and the index cannot tell).
    /// </summary>
    /// <exception cref="InvalidOperationException">The fingerprints differ.</exception>
    public void CheckModel(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (verified.TryGetTarget(out var ok) && ReferenceEquals(ok, model)) return;
        string fp = Fingerprint(model);
        if (fp != ModelFingerprint)
            throw new InvalidOperationException(
                $"this index was built with a different model ({ModelPath ?? "unknown checkpoint"}, fingerprint {ModelFingerprint[..12]}…) than the one given (fingerprint {fp[..12]}…); " +
                "its embeddings are not comparable: query with the same checkpoint (and the same --config, if the index was built with one), or rebuild the index with this one");
        verified.SetTarget(model);
    }

    readonly WeakReference<ClipModel> verified = new(null!);

    /// <summary>
    /// Writes the index atomically (temporary file, then rename). File paths are stored relative to the index's folder
    /// when they are inside it, so a folder moved together with its index stays searchable.
    /// </summary>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var header = new JsonObject
        {
            ["version"] = FormatVersion,
            ["model_fingerprint"] = ModelFingerprint,
            ["model"] = ModelPath,
            ["config"] = ConfigPath,
            ["files"] = new JsonArray(Files.Select(f => (JsonNode)new JsonArray(StoredPath(f.Path, dir), f.Size, f.ModifiedTicks)).ToArray()),
        };
        using var sd = new StateDict();
        sd.Add("embeddings", embeddings.alias());
        SafeTensors.Save(path, sd, new Dictionary<string, string> { [MetadataKey] = header.ToJsonString() });
    }

    static string StoredPath(string full, string dir)
    {
        var rel = Path.GetRelativePath(dir, full);
        return rel.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(rel) ? full : rel;
    }

    /// <summary>Reads an index written by <see cref="Save"/>.</summary>
    /// <exception cref="ClipSharpException">The file is not an index, or its header and embeddings disagree; the message names the file.</exception>
    public static ImageIndex Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"index not found: {path}", path);
        StateDict sd;
        IReadOnlyDictionary<string, string> meta;
        try { sd = SafeTensors.Load(path, out meta); }
        catch (Exception e) when (e is InvalidDataException or ClipSharpException) { throw new ClipSharpException($"{path}: not a ClipSharp image index ({e.Message})", e); }
        using (sd)
        {
            if (!meta.TryGetValue(MetadataKey, out var json) || !sd.TryGetValue("embeddings", out var emb))
                throw new ClipSharpException($"{path}: not a ClipSharp image index (no '{MetadataKey}' header or no 'embeddings' tensor)");
            string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            try
            {
                var header = JsonNode.Parse(json)!.AsObject();
                int version = header["version"]!.GetValue<int>();
                if (version != FormatVersion) throw new ClipSharpException($"{path}: index format {version}; this ClipSharp reads format {FormatVersion}");
                var files = header["files"]!.AsArray().Select(n =>
                {
                    var a = n!.AsArray();
                    string p = a[0]!.GetValue<string>();
                    return new IndexedFile(Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(dir, p)), a[1]!.GetValue<long>(), a[2]!.GetValue<long>());
                }).ToList();
                if (emb.dtype != ScalarType.Float32 || emb.dim() != 2 || emb.shape[0] != files.Count)
                    throw new ClipSharpException($"{path}: embeddings are {emb.dtype} [{string.Join(", ", emb.shape)}] for {files.Count} files");
                return new ImageIndex(emb.clone(), files, header["model_fingerprint"]!.GetValue<string>(), header["model"]?.GetValue<string>(),
                    header["config"]?.GetValue<string>());
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException or ArgumentException or IndexOutOfRangeException)
            {
                throw new ClipSharpException($"{path}: damaged image-index header ({e.Message})", e);
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => embeddings.Dispose();
}
