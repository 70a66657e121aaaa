using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ClipSharp.Data.Readers;

namespace ClipSharp.Evaluation;

/// <summary>What a cached feature set depends on.</summary>
/// <param name="Checkpoint">The checkpoint's path (part of the cache slot).</param>
/// <param name="CheckpointFingerprint">Identity of the checkpoint's contents (see <see cref="FeatureCache.FingerprintFile"/>).</param>
/// <param name="Dataset">The dataset's description, e.g. its path and split (part of the cache slot).</param>
/// <param name="DatasetFingerprint">Identity of the dataset's contents (see <see cref="FeatureCache.FingerprintInputs"/>).</param>
/// <param name="Preprocessing">Preprocessing and precision settings (part of the cache slot).</param>
internal sealed record FeatureCacheKey(string Checkpoint, string CheckpointFingerprint, string Dataset, string DatasetFingerprint, string Preprocessing)
{
    /// <summary>The file name stem of the slot: a hash of checkpoint path, dataset description and preprocessing.</summary>
    public string Slot => FeatureCache.Hash($"{Path.GetFullPath(Checkpoint)}\n{Dataset}\n{Preprocessing}")[..24];
}

/// <summary>Outcome of a cache lookup.</summary>
internal enum CacheOutcome
{
    /// <summary>Features were computed; there was no cache entry.</summary>
    Computed,
    /// <summary>Features were loaded from the cache.</summary>
    Hit,
    /// <summary>A cache entry existed but its checkpoint or dataset fingerprint no longer matched; features were recomputed.</summary>
    Stale,
    /// <summary>Caching was off.</summary>
    Disabled,
}

/// <summary>
/// On-disk cache of image features, one file per (checkpoint, dataset, preprocessing) slot. Each file stores the
/// checkpoint and dataset fingerprints it was computed from; a lookup whose fingerprints differ finds the entry stale,
/// recomputes and overwrites it. Files are written atomically (temporary file, then rename).
/// </summary>
internal sealed class FeatureCache
{
    const string Magic = "CLIPSHARP-FEATURES-1";

    /// <summary>Uses (and creates when needed) a cache directory.</summary>
    public FeatureCache(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory = directory;
    }

    /// <summary>The cache directory.</summary>
    public string Directory { get; }

    /// <summary>Why the last <see cref="GetOrCompute"/> call found its entry stale, if it did.</summary>
    public string? LastStaleReason { get; private set; }

    /// <summary>Hex SHA-256 of a string.</summary>
    public static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Fingerprint of a checkpoint file or directory from full path, size and modification time
    /// (cheap; <paramref name="contentHash"/> hashes the bytes instead, which survives copies and touches).</summary>
    public static string FingerprintFile(string path, bool contentHash = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        var files = System.IO.Directory.Exists(path)
            ? System.IO.Directory.GetFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray()
            : [path];
        var sb = new StringBuilder();
        foreach (var f in files)
        {
            var info = new FileInfo(f);
            if (!info.Exists) throw new FileNotFoundException($"not found: {f}", f);
            if (contentHash)
            {
                using var s = info.OpenRead();
                sb.Append(Path.GetFileName(f)).Append(':').Append(Convert.ToHexStringLower(SHA256.HashData(s))).Append('\n');
            }
            else sb.Append(info.FullName).Append(':').Append(info.Length).Append(':').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
        }
        return (contentHash ? "sha256:" : "stat:") + Hash(sb.ToString())[..32];
    }

    /// <summary>Fingerprint of a dataset: every input's id, and for files their size and modification time, for
    /// in-memory images a hash of the bytes. Changes when an image is added, removed, renamed or modified.</summary>
    public static string FingerprintInputs(IEnumerable<ImageInput> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        int n = 0;
        foreach (var x in inputs)
        {
            h.AppendData(Encoding.UTF8.GetBytes(x.Id + "\n"));
            if (x.Bytes is not null) h.AppendData(SHA256.HashData(x.Bytes));
            else if (x.Path is not null)
            {
                var info = new FileInfo(x.Path);
                h.AppendData(Encoding.UTF8.GetBytes(info.Exists ? $"{info.Length}:{info.LastWriteTimeUtc.Ticks}\n" : "missing\n"));
            }
            n++;
        }
        return $"{n}:" + Convert.ToHexStringLower(h.GetHashAndReset())[..32];
    }

    /// <summary>The file that holds a slot.</summary>
    public string PathFor(FeatureCacheKey key) => Path.Combine(Directory, key.Slot + ".features");

    /// <summary>Returns cached features when the entry exists and its fingerprints match; otherwise computes, stores and returns them.</summary>
    public ImageFeatures GetOrCompute(FeatureCacheKey key, Func<ImageFeatures> compute, out CacheOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(compute);
        LastStaleReason = null;
        var path = PathFor(key);
        outcome = CacheOutcome.Computed;
        if (File.Exists(path))
        {
            try
            {
                var (meta, features) = Read(path);
                var reasons = new List<string>();
                if (meta.CheckpointFingerprint != key.CheckpointFingerprint) reasons.Add("the checkpoint changed");
                if (meta.DatasetFingerprint != key.DatasetFingerprint) reasons.Add("the dataset changed");
                if (meta.Preprocessing != key.Preprocessing) reasons.Add("the preprocessing changed");
                if (reasons.Count == 0) { outcome = CacheOutcome.Hit; return features; }
                LastStaleReason = string.Join(", ", reasons);
                outcome = CacheOutcome.Stale;
            }
            catch (Exception e) when (e is InvalidDataException or ClipSharpException or JsonException or IOException or ArgumentException)
            {
                LastStaleReason = "unreadable cache file: " + e.Message;
                outcome = CacheOutcome.Stale;
            }
        }
        var fresh = compute();
        Write(path, key, fresh);
        return fresh;
    }

    sealed record Meta(string Magic, string Checkpoint, string CheckpointFingerprint, string Dataset, string DatasetFingerprint,
        string Preprocessing, int Count, int Dim, List<string> Ids, List<int> SourceIndex, List<SkippedItem> Skipped, DateTime CreatedUtc);

    static void Write(string path, FeatureCacheKey key, ImageFeatures f)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var meta = new Meta(Magic, key.Checkpoint, key.CheckpointFingerprint, key.Dataset, key.DatasetFingerprint, key.Preprocessing,
            f.Count, f.Dim, [.. f.Ids], [.. f.SourceIndex], [.. f.Skipped], DateTime.UtcNow);
        var json = JsonSerializer.SerializeToUtf8Bytes(meta);
        var tmp = path + "." + Environment.ProcessId + ".tmp";
        using (var fs = File.Create(tmp))
        {
            fs.Write(BitConverter.GetBytes((long)json.Length));
            fs.Write(json);
            fs.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(f.Data.AsSpan()));
        }
        File.Move(tmp, path, overwrite: true);
    }

    static (Meta Meta, ImageFeatures Features) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new ClipSharpException("truncated");
        long n = BitConverter.ToInt64(bytes, 0);
        if (n <= 0 || n > bytes.Length - 8) throw new ClipSharpException("bad header length");
        var meta = JsonSerializer.Deserialize<Meta>(bytes.AsSpan(8, (int)n)) ?? throw new ClipSharpException("empty header");
        if (meta.Magic != Magic) throw new ClipSharpException("not a ClipSharp feature cache file");
        long floats = (long)meta.Count * meta.Dim;
        if (bytes.Length - 8 - n != floats * 4) throw new ClipSharpException("feature data size does not match the header");
        var data = new float[floats];
        Buffer.BlockCopy(bytes, (int)(8 + n), data, 0, (int)(floats * 4));
        return (meta, new ImageFeatures(data, meta.Dim, meta.Ids, meta.SourceIndex, meta.Skipped));
    }
}
