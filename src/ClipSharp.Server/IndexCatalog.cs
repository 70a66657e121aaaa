using System.Threading.Channels;
using ClipSharp.Data.Readers;
using ClipSharp.Modeling;
using ClipSharp.Search;
using ClipSharp.Text;

namespace ClipSharp.Server;

/// <summary>
/// The indexes a server serves, by name, each with the model that embeds its queries (one model per distinct
/// checkpoint). Each index file is watched: when it is replaced (a <c>clip index</c> rebuild writes a temporary file
/// and renames it), the new file is loaded beside the old one and swapped in with one reference exchange; requests in
/// flight finish on the old one. A file that cannot be loaded, or that was built with another model, is reported and
/// the old index stays.
/// </summary>
internal sealed class IndexCatalog : IDisposable
{
    readonly ServeOptions options;
    readonly Dictionary<string, QueryEncoder> encoders = new(StringComparer.Ordinal);
    readonly object encoderGate = new();
    readonly List<Slot> slots = [];
    readonly CancellationTokenSource stopping = new();

    /// <summary>Raised after a rebuilt index file was swapped in: index name and its new generation.</summary>
    public event Action<string, long>? Reloaded;

    /// <summary>Raised when a changed index file could not be swapped in: index name and the reason.</summary>
    public event Action<string, string>? ReloadFailed;

    sealed class Slot(string name, string path)
    {
        public string Name { get; } = name;
        public string Path { get; } = path;
        public ServedIndex Current = null!;
        public readonly object Gate = new();
        public FileSystemWatcher? Watcher;
        public readonly Channel<bool> Changes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        public Task? Loop;
    }

    IndexCatalog(ServeOptions options) => this.options = options;

    /// <summary>Loads every index and its model; throws <see cref="ServeException"/> naming the file that cannot be served.</summary>
    public static IndexCatalog Open(ServeOptions options)
    {
        if (options.Indexes.Count == 0) throw new ServeException("no index given: pass --index FILE (written by clip index)");
        var catalog = new IndexCatalog(options);
        try
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var file in options.Indexes)
            {
                var path = Path.GetFullPath(file);
                if (!File.Exists(path)) throw new ServeException($"index not found: {file}");
                var name = NameOf(path);
                for (int i = 2; !names.Add(name); i++) name = $"{NameOf(path)}-{i}";
                var slot = new Slot(name, path);
                slot.Current = catalog.Load(slot, 1);
                catalog.slots.Add(slot);
                var s = slot.Current;
                options.Log?.Invoke($"{name}: {s.ServedCount} images from {path}" + (s.CaptionCount > 0 ? $", {s.CaptionCount} with captions" : "")
                    + (s.Approximate is not null ? $", approximate search ({Path.GetFileName(ApproximateIndex.PathFor(path))})" : "")
                    + (s.OutsideCount > 0 ? $" ({s.OutsideCount} images whose files lie outside the index's folder are not served)" : ""));
            }
            if (options.WatchIndexes) foreach (var slot in catalog.slots) catalog.Watch(slot);
            return catalog;
        }
        catch
        {
            catalog.Dispose();
            throw;
        }
    }

    /// <summary>"photos" for photos.index.safetensors.</summary>
    static string NameOf(string path)
    {
        var name = Path.GetFileName(path);
        foreach (var suffix in new[] { ".index.safetensors", ".safetensors" })
            if (name.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && name.Length > suffix.Length) return name[..^suffix.Length];
        return name;
    }

    /// <summary>Names of the served indexes, in the order given.</summary>
    public IReadOnlyList<string> Names => slots.Select(s => s.Name).ToList();

    /// <summary>The current generation of an index (default: the first), with a reference the caller releases.</summary>
    /// <exception cref="ApiError">404 for an unknown name.</exception>
    public ServedIndex Acquire(string? name)
    {
        var slot = string.IsNullOrEmpty(name) ? slots[0] : slots.FirstOrDefault(s => s.Name == name)
            ?? throw ApiError.NotFound($"no index named '{name}'; served: {string.Join(", ", slots.Select(s => s.Name))}");
        lock (slot.Gate)
        {
            slot.Current.AddReference();
            return slot.Current;
        }
    }

    ServedIndex Load(Slot slot, long generation)
    {
        ImageIndex index;
        try { index = ImageIndex.Load(slot.Path); }
        catch (Exception e) when (e is InvalidDataException or IOException) { throw new ServeException(e.Message, e); }
        try
        {
            var encoder = EncoderFor(index, slot.Path);
            if (encoder.Fingerprint != index.ModelFingerprint)
                throw new ServeException($"{slot.Path}: built with another model than {encoder.Checkpoint} (fingerprint {index.ModelFingerprint[..12]}… vs {encoder.Fingerprint[..12]}…); " +
                    "serve it with the checkpoint (and --config) it was built with, or rebuild it");
            if (index.Dim != encoder.Dim) throw new ServeException($"{slot.Path}: {index.Dim}-wide embeddings, but the model embeds {encoder.Dim}-wide");
            // Stamped before it is opened: a file renamed over it meanwhile is seen as a change and loaded next.
            var annStamp = ServedIndex.StampOf(ApproximateIndex.PathFor(slot.Path));
            var approximate = ApproximateIndex.OpenBeside(slot.Path, index, out var note);
            if (note is not null) options.Log?.Invoke($"{slot.Name}: {note}");
            try { return new ServedIndex(slot.Name, slot.Path, index, encoder, Captions(slot.Path), generation, approximate, annStamp); }
            catch
            {
                approximate?.Dispose();
                throw;
            }
        }
        catch
        {
            index.Dispose();
            throw;
        }
    }

    QueryEncoder EncoderFor(ImageIndex index, string indexPath)
    {
        string model = options.ModelPath ?? index.ModelPath
            ?? throw new ServeException($"{indexPath} does not record the checkpoint it was built with; pass --model");
        string? config = options.ConfigPath ?? (options.ModelPath is null ? index.ConfigPath : null);
        if (!File.Exists(model) && !Directory.Exists(model)) throw new ServeException($"checkpoint not found: {model} (used by {indexPath}; pass --model)");
        if (config is not null && !File.Exists(config)) throw new ServeException($"config not found: {config}");
        string key = Path.GetFullPath(model) + "\n" + (config is null ? "" : Path.GetFullPath(config));
        lock (encoderGate)
        {
            if (encoders.TryGetValue(key, out var existing)) return existing;
            ClipModel m;
            try { m = ClipModel.Load(model, config); }
            catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException or ArgumentException) { throw new ServeException($"{model}: {e.Message}", e); }
            ClipTokenizer tokenizer;
            try { tokenizer = m.LoadTokenizer(options.VocabPath); }
            catch (Exception e) when (e is VocabularyMismatchException or FileNotFoundException or InvalidDataException or IOException)
            {
                m.Dispose();
                throw new ServeException($"vocabulary for {model}: {e.Message}", e);
            }
            var encoder = new QueryEncoder(m, tokenizer, Path.GetFullPath(model), options.MaxImagePixels);
            encoders[key] = encoder;
            options.Log?.Invoke($"model {model}{(config is null ? "" : $" with {config}")}: {m.Config.EmbedDim}-wide embeddings");
            return encoder;
        }
    }

    /// <summary>Captions by full image path: the tables given with --captions, then NAME.captions.csv/.tsv beside the index.</summary>
    IReadOnlyDictionary<string, string> Captions(string indexPath)
    {
        var tables = new List<string>(options.CaptionFiles);
        var stem = Path.Combine(Path.GetDirectoryName(indexPath)!, NameOf(indexPath));
        foreach (var ext in new[] { ".captions.csv", ".captions.tsv" })
            if (File.Exists(stem + ext)) tables.Add(stem + ext);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var table in tables)
        {
            CsvDataset csv;
            try { csv = new CsvDataset(table); }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException or IOException) { throw new ServeException($"captions: {e.Message}", e); }
            if (csv.CaptionColumn is null) throw new ServeException($"{table}: no caption column (caption, text, title or sentence)");
            foreach (var pair in csv.Pairs())
                if (pair.ImagePath is { } p && pair.Captions.Count > 0) map.TryAdd(Path.GetFullPath(p), pair.Captions[0]);
        }
        return map;
    }

    void Watch(Slot slot)
    {
        // The index file and the approximate index beside it: either one rebuilt makes a new generation.
        var w = new FileSystemWatcher(Path.GetDirectoryName(slot.Path)!)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        w.Filters.Add(Path.GetFileName(slot.Path));
        w.Filters.Add(Path.GetFileName(ApproximateIndex.PathFor(slot.Path)));
        void Signal() => slot.Changes.Writer.TryWrite(true);
        w.Changed += (_, _) => Signal();
        w.Created += (_, _) => Signal();
        w.Renamed += (_, _) => Signal();
        w.Error += (_, _) => Signal();
        w.EnableRaisingEvents = true;
        slot.Watcher = w;
        slot.Loop = Task.Run(() => ReloadLoop(slot));
    }

    async Task ReloadLoop(Slot slot)
    {
        var token = stopping.Token;
        try
        {
            while (await slot.Changes.Reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                slot.Changes.Reader.TryRead(out _);
                var stamp = ServedIndex.StampOf(slot.Path);
                if (stamp.Length < 0 || (stamp == slot.Current.Stamp && ServedIndex.StampOf(ApproximateIndex.PathFor(slot.Path)) == slot.Current.AnnStamp)) continue;
                ServedIndex next;
                try { next = Load(slot, slot.Current.Generation + 1); }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A file still being written by something other than clip index: the next change event retries.
                    options.Log?.Invoke($"{slot.Name}: the changed index file was not loaded, still serving generation {slot.Current.Generation}: {e.Message}");
                    ReloadFailed?.Invoke(slot.Name, e.Message);
                    continue;
                }
                ServedIndex old;
                lock (slot.Gate)
                {
                    old = slot.Current;
                    slot.Current = next;
                }
                old.Release();
                options.Log?.Invoke($"{slot.Name}: reloaded {slot.Path}: {next.ServedCount} images (generation {next.Generation}, {(next.Approximate is null ? "exact" : "approximate")} search)");
                Reloaded?.Invoke(slot.Name, next.Generation);
            }
        }
        catch (OperationCanceledException) { }
    }

    public void Dispose()
    {
        stopping.Cancel();
        foreach (var s in slots)
        {
            s.Watcher?.Dispose();
            s.Changes.Writer.TryComplete();
        }
        foreach (var s in slots)
        {
            try { s.Loop?.Wait(TimeSpan.FromSeconds(30)); } catch (AggregateException) { }
            s.Current?.Release();
        }
        lock (encoderGate)
        {
            foreach (var e in encoders.Values) e.Dispose();
            encoders.Clear();
        }
        stopping.Dispose();
    }
}
