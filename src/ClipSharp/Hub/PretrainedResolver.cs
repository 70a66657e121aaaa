using System.Text.RegularExpressions;

namespace ClipSharp.Hub;

/// <summary>A pretrained model found on disk: what to hand to the checkpoint loader.</summary>
/// <param name="Name">The name as resolved: <c>ViT-B-32:openai</c>, <c>hf-hub:org/name@revision</c>, <c>local-dir:/path</c>.</param>
/// <param name="CheckpointPath">The weights file or Hugging Face model folder (what <c>ClipModel.Load</c> and <c>CheckpointLoader.Load</c> take).
/// The model's config, preprocessing and tokenizer files are beside it, where the loaders look.</param>
/// <param name="ConfigPath">The architecture config to build the model from (also found beside the weights), or null when the
/// checkpoint carries its own (a Hugging Face <c>config.json</c>).</param>
/// <param name="VocabularyPath">The folder with the repository's own <c>vocab.json</c> and <c>merges.txt</c> (beside the weights),
/// or null when it has none: then OpenAI's vocabulary, built into ClipSharp, is the model's.</param>
/// <param name="Source">Where the weights came from: a hub repository and commit, a release URL, or a local folder.</param>
public sealed record ResolvedModel(string Name, string CheckpointPath, string? ConfigPath, string? VocabularyPath, string Source)
{
    /// <summary>Things worth telling the user (a fallback that was taken).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>One file a pretrained name consists of, and whether and where it is cached.</summary>
/// <param name="Origin">A hub repository (<c>org/name</c>) or a URL.</param>
/// <param name="File">The file's name in the repository (or the URL's file name).</param>
/// <param name="CachedPath">The cached copy (a snapshot path or a file under the URL cache), or null.</param>
/// <param name="Size">Its size: on disk when cached, else as the server announces it when asked, else null.</param>
public sealed record PretrainedFile(string Origin, string File, string? CachedPath, long? Size);

/// <summary>What a pretrained name refers to and where its files are or would be cached (<see cref="PretrainedResolver.InspectAsync"/>).</summary>
/// <param name="Name">The canonical name.</param>
/// <param name="Entry">The table entry, for <c>architecture:tag</c> names.</param>
/// <param name="HubRepository">The hub repository, or null for <c>local-dir:</c>.</param>
/// <param name="Revision">The revision fetched.</param>
/// <param name="RepositoryCacheDir">The repository's folder in the Hugging Face cache, or null.</param>
/// <param name="ModelFolder">The folder ClipSharp gathers the model's files in (links, and the table's config), or the local folder.</param>
/// <param name="Files">The files and their cache state.</param>
public sealed record PretrainedInfo(string Name, PretrainedWeights? Entry, string? HubRepository, string Revision, string? RepositoryCacheDir,
    string ModelFolder, IReadOnlyList<PretrainedFile> Files);

/// <summary>
/// Turns a model name into local files, downloading what is not cached. Names take the forms OpenCLIP accepts:
/// an architecture and a tag (<c>("ViT-B-32", "openai")</c>, or <c>"ViT-B-32:openai"</c> in one string; see
/// <see cref="PretrainedModels"/>), <c>"hf-hub:org/name"</c> (optionally <c>@revision</c>) for any hub repository in
/// OpenCLIP's layout (<c>open_clip_config.json</c> + weights) or the transformers layout (<c>config.json</c>,
/// <c>model.safetensors</c> or <c>pytorch_model.bin</c>, <c>vocab.json</c>, <c>merges.txt</c>, <c>preprocessor_config.json</c>),
/// and <c>"local-dir:/path"</c> for a folder in either layout.
/// </summary>
/// <remarks>
/// Files come from the Hugging Face cache when present there (no request is made, so whatever Python's
/// <c>huggingface_hub</c> downloaded is reused, and what ClipSharp downloads Python reuses), otherwise from the hub
/// (<see cref="PretrainedOptions.Endpoint"/>). Table entries with a release URL fall back to it when the hub fails, and reuse
/// a verified copy in <see cref="PretrainedOptions.UrlCacheDir"/>. For table entries ClipSharp writes the model config
/// the table declares (architecture, QuickGELU or GELU, normalisation) beside links to the cached files, in a folder under
/// <see cref="PretrainedOptions.ClipSharpCacheDir"/>; that folder is <see cref="ResolvedModel.CheckpointPath"/>'s.
/// </remarks>
public static partial class PretrainedResolver
{
    /// <summary>The prefix of hub repository names.</summary>
    public const string HubPrefix = "hf-hub:";

    /// <summary>The prefix of local folder names.</summary>
    public const string LocalPrefix = "local-dir:";

    const string OpenClipConfigFile = "open_clip_config.json";
    static readonly string[] OpenClipWeights = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"];
    static readonly string[] TransformersWeights = ["model.safetensors", "pytorch_model.bin"];

    /// <summary>Resolves and, if needed, downloads a pretrained model (see <see cref="ResolveAsync"/>).</summary>
    public static ResolvedModel Resolve(string name, string? tag = null, PretrainedOptions? options = null,
        IProgress<DownloadProgress>? progress = null, CancellationToken cancellationToken = default) =>
        ResolveAsync(name, tag, options, progress, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Resolves <paramref name="name"/> (with <paramref name="tag"/> when the name is an architecture) to local files,
    /// downloading what the caches lack.
    /// </summary>
    /// <param name="name">An architecture (<c>ViT-B-32</c>, with <paramref name="tag"/>), <c>architecture:tag</c>, <c>hf-hub:org/name[@revision]</c> or <c>local-dir:PATH</c>.</param>
    /// <param name="tag">The pretraining tag for an architecture name; null for the other forms (an architecture alone means its <c>openai</c> weights).</param>
    /// <param name="options">Endpoint, caches, token, retries; null reads the environment (<see cref="PretrainedOptions.FromEnvironment()"/>).</param>
    /// <param name="progress">Receives download progress.</param>
    /// <param name="cancellationToken">Cancels the download; a partial file is kept and the next call resumes it.</param>
    /// <exception cref="HubException">Unknown name, missing or inaccessible files, offline without a cached copy, a bad checksum, or network failure.</exception>
    public static async Task<ResolvedModel> ResolveAsync(string name, string? tag = null, PretrainedOptions? options = null,
        IProgress<DownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var o = (options ?? PretrainedOptions.FromEnvironment()).WithDefaults();
        var parsed = Parse(name, tag, o);
        if (parsed is ModelName.Local local) return ResolveLocal(local.Path);
        using var dl = new HubDownloader(o);
        return parsed switch
        {
            ModelName.Table t => await ResolveTableAsync(t, dl, o, progress, cancellationToken).ConfigureAwait(false),
            ModelName.Hub h => await ResolveHubAsync(h, dl, o, progress, cancellationToken).ConfigureAwait(false),
            _ => throw new InvalidOperationException(),
        };
    }

    /// <summary>
    /// True when <paramref name="value"/> reads as a pretrained name rather than a path: it starts with <c>hf-hub:</c> or
    /// <c>local-dir:</c>, or is a table architecture with or without <c>:tag</c>. Callers that also accept paths should
    /// check for an existing file first.
    /// </summary>
    public static bool IsPretrainedName(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.StartsWith(HubPrefix, StringComparison.Ordinal) || value.StartsWith(LocalPrefix, StringComparison.Ordinal)) return true;
        int colon = value.IndexOf(':');
        return PretrainedModels.NormalizeArchitecture(colon < 0 ? value : value[..colon], out _) is not null;
    }

    /// <summary>The cached weights of a name, or null; makes no request and checks no checksum (for listings).</summary>
    public static string? FindCached(string name, string? tag = null, PretrainedOptions? options = null)
    {
        var o = (options ?? PretrainedOptions.FromEnvironment()).WithDefaults();
        var cache = new HubCache(o.HubCacheDir);
        switch (Parse(name, tag, o))
        {
            case ModelName.Table t:
                foreach (var f in OpenClipWeights)
                    if (cache.TryGetFile(t.Entry.HubRepository, o.Revision, f) is { } p) return p;
                return UrlCachePath(t.Entry, o) is { } u && File.Exists(u) ? u : null;
            case ModelName.Hub h:
                foreach (var f in OpenClipWeights.Concat(TransformersWeights))
                    if (cache.TryGetFile(h.Repo, h.Revision, f) is { } p) return p;
                return null;
            case ModelName.Local l:
                return Directory.Exists(l.Path) ? l.Path : null;
            default:
                return null;
        }
    }

    /// <summary>
    /// Describes a name: its sources, the cache paths of its files and their sizes. Makes no request unless
    /// <paramref name="querySizes"/> is set and the options are not offline (then HEAD requests give the sizes of files not cached).
    /// </summary>
    public static async Task<PretrainedInfo> InspectAsync(string name, string? tag = null, PretrainedOptions? options = null,
        bool querySizes = false, CancellationToken cancellationToken = default)
    {
        var o = (options ?? PretrainedOptions.FromEnvironment()).WithDefaults();
        var parsed = Parse(name, tag, o);
        if (parsed is ModelName.Local local)
        {
            var files = Directory.Exists(local.Path)
                ? Directory.EnumerateFiles(local.Path).Order(StringComparer.Ordinal).Select(f => new PretrainedFile(local.Path, Path.GetFileName(f), f, new FileInfo(f).Length)).ToList()
                : [];
            return new PretrainedInfo(LocalPrefix + local.Path, null, null, "", null, local.Path, files);
        }
        using var dl = new HubDownloader(o);
        var list = new List<PretrainedFile>();
        async Task AddHub(string repo, string revision, string file)
        {
            var cached = dl.Cache.TryGetFile(repo, revision, file);
            long? size = cached is not null ? SizeOf(cached) : null;
            if (cached is null && querySizes && !o.Offline && !dl.Cache.IsKnownMissing(repo, revision, file))
            {
                try { size = await dl.RemoteSizeAsync(repo, revision, file, cancellationToken).ConfigureAwait(false); }
                catch (HubException) { size = null; }
            }
            list.Add(new PretrainedFile(repo, file, cached, size));
        }
        string repoName, revision, folder;
        PretrainedWeights? entry = null;
        if (parsed is ModelName.Table t)
        {
            entry = t.Entry;
            (repoName, revision, folder) = (t.Entry.HubRepository, o.Revision, ModelFolder(o, t));
            await AddHub(repoName, revision, OpenClipConfigFile).ConfigureAwait(false);
            foreach (var f in OpenClipWeights) await AddHub(repoName, revision, f).ConfigureAwait(false);
            if (t.Entry.Url is { } url)
            {
                var u = UrlCachePath(t.Entry, o)!;
                list.Add(new PretrainedFile(url, Path.GetFileName(u), File.Exists(u) ? u : null, File.Exists(u) ? new FileInfo(u).Length : null));
            }
        }
        else
        {
            var h = (ModelName.Hub)parsed;
            (repoName, revision, folder) = (h.Repo, h.Revision, ModelFolder(o, h));
            string[] candidates = [OpenClipConfigFile, .. OpenClipWeights, "config.json", .. TransformersWeights, "preprocessor_config.json"];
            foreach (var f in candidates)
                await AddHub(repoName, revision, f).ConfigureAwait(false);
        }
        if (parsed is ModelName.Hub)
            foreach (var f in new[] { "vocab.json", "merges.txt" }) await AddHub(repoName, revision, f).ConfigureAwait(false);
        string canonical = parsed is ModelName.Table tt ? tt.Entry.Name : $"{HubPrefix}{repoName}{(revision == o.Revision ? "" : "@" + revision)}";
        return new PretrainedInfo(canonical, entry, repoName, revision, dl.Cache.RepoDir(repoName), folder, list);
    }

    static long? SizeOf(string path)
    {
        try
        {
            var target = File.ResolveLinkTarget(path, returnFinalTarget: true);
            return new FileInfo(target?.FullName ?? path).Length;
        }
        catch (IOException) { return null; }
    }

    // ----- names -----

    internal abstract record ModelName
    {
        internal sealed record Table(PretrainedWeights Entry, PretrainedArchitecture Architecture) : ModelName;
        internal sealed record Hub(string Repo, string Revision) : ModelName;
        internal sealed record Local(string Path) : ModelName;
    }

    [GeneratedRegex(@"^([A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex RepoId();

    internal static ModelName Parse(string name, string? tag, PretrainedOptions o)
    {
        ArgumentNullException.ThrowIfNull(name);
        string n = name.Trim();
        if (n.StartsWith(HubPrefix, StringComparison.Ordinal) || n.StartsWith(LocalPrefix, StringComparison.Ordinal))
        {
            if (tag is not null)
                throw new HubException(HubErrorKind.UnknownName, $"{n}: a pretrained tag ('{tag}') goes with an architecture name, not with {n[..(n.IndexOf(':') + 1)]} (use @revision for a hub revision)");
            if (n.StartsWith(LocalPrefix, StringComparison.Ordinal))
            {
                string path = n[LocalPrefix.Length..];
                if (path.Length == 0) throw new HubException(HubErrorKind.UnknownName, "local-dir: needs a folder after the colon");
                return new ModelName.Local(Path.GetFullPath(path));
            }
            string id = n[HubPrefix.Length..];
            string revision = o.Revision;
            int at = id.IndexOf('@');
            if (at >= 0) { revision = id[(at + 1)..]; id = id[..at]; }
            if (!RepoId().IsMatch(id) || id.Contains("..", StringComparison.Ordinal) || id.Contains("--", StringComparison.Ordinal))
                throw new HubException(HubErrorKind.UnknownName, $"{n}: '{id}' is not a hub repository id (expected org/name, letters, digits, '-', '_' and '.')");
            if (revision.Length == 0 || revision.Contains("..", StringComparison.Ordinal) || revision.StartsWith('/') || revision.Contains('\\'))
                throw new HubException(HubErrorKind.UnknownName, $"{n}: '{revision}' is not a revision (a branch, tag or commit)");
            return new ModelName.Hub(id, revision);
        }

        string arch = n;
        if (tag is null && n.IndexOf(':') is int colon and > 0)
        {
            arch = n[..colon];
            tag = n[(colon + 1)..];
        }
        var extraArch = o.ExtraArchitectures.FirstOrDefault(a => string.Equals(a.Name, arch, StringComparison.OrdinalIgnoreCase));
        string? known = extraArch?.Name ?? PretrainedModels.NormalizeArchitecture(arch, out _);
        if (known is null)
            throw new HubException(HubErrorKind.UnknownName,
                $"'{n}' is not a pretrained name: '{arch}' is not an architecture in the table ({string.Join(", ", PretrainedModels.Architectures)}); " +
                "other weights are named hf-hub:org/name or local-dir:PATH (see clip models list)");
        var tags = extraArch is not null
            ? o.ExtraEntries.Where(e => e.Architecture == extraArch.Name).Select(e => e.Tag).ToList()
            : PretrainedModels.TagsOf(arch).ToList();
        if (string.IsNullOrWhiteSpace(tag))
        {
            if (!tags.Contains("openai"))
                throw new HubException(HubErrorKind.UnknownName, $"{arch} needs a pretrained tag ({arch}:TAG), one of: {string.Join(", ", tags)}");
            tag = "openai";
        }
        var entry = PretrainedModels.Find(arch, tag, o.ExtraEntries)
            ?? throw new HubException(HubErrorKind.UnknownName, $"{arch} has no pretrained tag '{tag}'; its tags: {string.Join(", ", tags)}");
        var architecture = PretrainedModels.ArchitectureOf(entry.Architecture, o.ExtraArchitectures)
            ?? throw new InvalidOperationException($"the table has no architecture {entry.Architecture}");
        return new ModelName.Table(entry, architecture);
    }

    // ----- resolution -----

    static ResolvedModel ResolveLocal(string dir)
    {
        string name = LocalPrefix + dir;
        if (!Directory.Exists(dir)) throw new HubException(HubErrorKind.NotFound, $"{name}: no such folder");
        string? vocab = File.Exists(Path.Combine(dir, "vocab.json")) && File.Exists(Path.Combine(dir, "merges.txt")) ? dir : null;
        var openClip = Path.Combine(dir, OpenClipConfigFile);
        if (File.Exists(openClip))
        {
            var weights = OpenClipWeights.Select(f => Path.Combine(dir, f)).FirstOrDefault(File.Exists)
                ?? throw new HubException(HubErrorKind.NotFound, $"{name}: the folder has {OpenClipConfigFile} but neither {string.Join(" nor ", OpenClipWeights)}");
            return new ResolvedModel(name, weights, openClip, vocab, "local-dir");
        }
        if (File.Exists(Path.Combine(dir, "config.json")))
        {
            if (!TransformersWeights.Any(f => File.Exists(Path.Combine(dir, f))))
                throw new HubException(HubErrorKind.NotFound, $"{name}: the folder has config.json but neither {string.Join(" nor ", TransformersWeights)}");
            return new ResolvedModel(name, dir, null, vocab, "local-dir");
        }
        throw new HubException(HubErrorKind.NotFound,
            $"{name}: the folder holds neither OpenCLIP's {OpenClipConfigFile} with {OpenClipWeights[0]} (or {OpenClipWeights[1]}) nor a Hugging Face config.json with {TransformersWeights[0]} (or {TransformersWeights[1]})");
    }

    static string ModelFolder(PretrainedOptions o, ModelName name) => Path.Combine(o.ClipSharpCacheDir, "pretrained", name switch
    {
        ModelName.Table t => $"{t.Entry.Architecture}--{PretrainedModels.CleanTag(t.Entry.Tag)}",
        ModelName.Hub h => $"hf-hub--{h.Repo.Replace("/", "--", StringComparison.Ordinal)}--{HubCache.SnapshotNameFor(h.Revision)}",
        _ => throw new InvalidOperationException(),
    });

    static string? UrlCachePath(PretrainedWeights e, PretrainedOptions o) =>
        e.Url is null ? null : Path.Combine(o.UrlCacheDir, Path.GetFileName(new Uri(e.Url).AbsolutePath));

    static async Task<ResolvedModel> ResolveTableAsync(ModelName.Table t, HubDownloader dl, PretrainedOptions o, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        var e = t.Entry;
        var notes = new List<string>();
        string folder = ModelFolder(o, t);
        string? weights = OpenClipWeights.Select(f => dl.Cache.TryGetFile(e.HubRepository, o.Revision, f)).FirstOrDefault(p => p is not null);
        string source = $"{HubPrefix}{e.HubRepository}";
        string? urlFile = UrlCachePath(e, o);
        if (weights is null && urlFile is not null && File.Exists(urlFile) && UrlCopyIsGood(urlFile, e.UrlSha256, folder, notes))
        {
            weights = urlFile;
            source = e.Url!;
        }
        if (weights is null)
        {
            if (o.Offline)
                throw new HubException(HubErrorKind.NotCached,
                    $"{e.Name} is not cached (looked in {dl.Cache.RepoDir(e.HubRepository)}{(urlFile is null ? "" : " and " + urlFile)}) and HF_HUB_OFFLINE is set; download it once online (clip models download {e.Name})");
            try
            {
                weights = await GetWeightsAsync(dl, e.HubRepository, o.Revision, OpenClipWeights, progress, ct).ConfigureAwait(false);
            }
            catch (HubException hubError) when (e.Url is not null && urlFile is not null)
            {
                notes.Add($"the hub failed ({hubError.Message}); used the release URL {e.Url}");
                try
                {
                    await dl.DownloadUrlAsync(new Uri(e.Url), urlFile, e.UrlSha256, progress, ct).ConfigureAwait(false);
                }
                catch (HubException urlError)
                {
                    throw new HubException(urlError.Kind, $"{e.Name}: the hub failed ({hubError.Message}) and so did the release URL ({urlError.Message})", urlError);
                }
                MarkUrlCopyGood(urlFile, folder);
                weights = urlFile;
                source = e.Url;
            }
        }
        if (weights != urlFile)
        {
            source = $"{HubPrefix}{e.HubRepository}@{CommitOf(weights)}";
            // The hub's own config too, so the snapshot is complete for OpenCLIP's hf-hub: loading; ClipSharp uses the table's.
            try { await dl.GetHubFileAsync(e.HubRepository, o.Revision, OpenClipConfigFile, required: false, progress, ct).ConfigureAwait(false); }
            catch (HubException) { }
        }

        Directory.CreateDirectory(folder);
        string weightsName = weights == urlFile ? OpenClipWeights[1] : Path.GetFileName(weights);
        Gather(folder, weightsName, weights, OpenClipWeights);
        string config = Path.Combine(folder, OpenClipConfigFile);
        string json = t.Architecture.HubConfigJson(e);
        if (!File.Exists(config) || new FileInfo(config).LinkTarget is not null || File.ReadAllText(config) != json)
        {
            if (new FileInfo(config).LinkTarget is not null) File.Delete(config);
            HubCache.WriteAtomically(config, json);
        }
        // Every model in the table uses OpenAI's BPE vocabulary, which ClipSharp has built in: no tokenizer files to fetch.
        RemoveTokenizerLinks(folder);
        return new ResolvedModel(e.Name, Path.Combine(folder, weightsName), config, null, source) { Notes = notes };
    }

    static async Task<ResolvedModel> ResolveHubAsync(ModelName.Hub h, HubDownloader dl, PretrainedOptions o, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        string name = $"{HubPrefix}{h.Repo}{(h.Revision == o.Revision ? "" : "@" + h.Revision)}";
        var notes = new List<string>();
        string folder = ModelFolder(o, h);
        var openClip = await dl.GetHubFileAsync(h.Repo, h.Revision, OpenClipConfigFile, required: false, progress, ct).ConfigureAwait(false);
        if (openClip is not null)
        {
            var weights = await GetWeightsAsync(dl, h.Repo, h.Revision, OpenClipWeights, progress, ct).ConfigureAwait(false);
            Directory.CreateDirectory(folder);
            Gather(folder, Path.GetFileName(weights), weights, OpenClipWeights);
            Gather(folder, OpenClipConfigFile, openClip, [OpenClipConfigFile]);
            var vocab = await TokenizerAsync(dl, o, h.Repo, h.Revision, folder, progress, ct).ConfigureAwait(false);
            return new ResolvedModel(name, Path.Combine(folder, Path.GetFileName(weights)), Path.Combine(folder, OpenClipConfigFile), vocab,
                $"{HubPrefix}{h.Repo}@{CommitOf(weights)}") { Notes = notes };
        }
        var config = await dl.GetHubFileAsync(h.Repo, h.Revision, "config.json", required: false, progress, ct).ConfigureAwait(false)
            ?? throw new HubException(o.Offline ? HubErrorKind.NotCached : HubErrorKind.NotFound, o.Offline
                ? $"{name} is not in the Hugging Face cache ({dl.Cache.RepoDir(h.Repo)}) and HF_HUB_OFFLINE is set; download it once online (clip models download {name})"
                : $"{name}: the repository has neither {OpenClipConfigFile} (OpenCLIP) nor config.json (transformers) at revision '{h.Revision}'");
        var hfWeights = await GetWeightsAsync(dl, h.Repo, h.Revision, TransformersWeights, progress, ct).ConfigureAwait(false);
        var extras = new List<string>();
        foreach (var f in o.IncludeTokenizer ? ["preprocessor_config.json", "vocab.json", "merges.txt"] : new[] { "preprocessor_config.json" })
            if (await dl.GetHubFileAsync(h.Repo, h.Revision, f, required: false, progress, ct).ConfigureAwait(false) is { } p) extras.Add(p);
        string snapshot = Path.GetDirectoryName(config)!;
        bool together = Path.GetDirectoryName(hfWeights) == snapshot && extras.All(p => Path.GetDirectoryName(p) == snapshot);
        bool hasVocab = extras.Any(p => Path.GetFileName(p) == "vocab.json") && extras.Any(p => Path.GetFileName(p) == "merges.txt");
        string source = $"{HubPrefix}{h.Repo}@{CommitOf(config)}";
        if (together)
            return new ResolvedModel(name, snapshot, null, hasVocab ? snapshot : null, source) { Notes = notes };
        // Files from different commits (the branch moved between requests): gather links in one folder.
        Directory.CreateDirectory(folder);
        Gather(folder, "config.json", config, ["config.json"]);
        Gather(folder, Path.GetFileName(hfWeights), hfWeights, TransformersWeights);
        foreach (var p in extras) Gather(folder, Path.GetFileName(p), p, [Path.GetFileName(p)]);
        return new ResolvedModel(name, folder, null, hasVocab ? folder : null, source) { Notes = notes };
    }

    /// <summary>The first weights file that is cached, else the first the repository has (the last name is required).</summary>
    static async Task<string> GetWeightsAsync(HubDownloader dl, string repo, string revision, string[] names, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        foreach (var f in names)
            if (dl.Cache.TryGetFile(repo, revision, f) is { } cached) return cached;
        for (int i = 0; i < names.Length - 1; i++)
            if (await dl.GetHubFileAsync(repo, revision, names[i], required: false, progress, ct).ConfigureAwait(false) is { } p) return p;
        try
        {
            return (await dl.GetHubFileAsync(repo, revision, names[^1], required: true, progress, ct).ConfigureAwait(false))!;
        }
        catch (HubException e) when (e.MissingFile == names[^1] || e.Kind == HubErrorKind.NotCached)
        {
            throw new HubException(e.Kind, e.Kind == HubErrorKind.NotCached
                ? $"{HubPrefix}{repo}: neither {string.Join(" nor ", names)} is in the Hugging Face cache ({dl.Cache.RepoDir(repo)}) and HF_HUB_OFFLINE is set; download it once online (clip models download {HubPrefix}{repo})"
                : $"{HubPrefix}{repo}: the repository has neither {string.Join(" nor ", names)} at revision '{revision}'", e);
        }
    }

    /// <summary>The repository's own vocab.json and merges.txt linked into <paramref name="folder"/>, or null when it has none
    /// (its models then use the built-in OpenAI vocabulary, as OpenCLIP's do).</summary>
    static async Task<string?> TokenizerAsync(HubDownloader dl, PretrainedOptions o, string repo, string revision, string folder,
        IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        if (o.IncludeTokenizer)
        {
            var vocab = await dl.GetHubFileAsync(repo, revision, "vocab.json", required: false, progress, ct).ConfigureAwait(false);
            var merges = vocab is null ? null : await dl.GetHubFileAsync(repo, revision, "merges.txt", required: false, progress, ct).ConfigureAwait(false);
            if (vocab is not null && merges is not null)
            {
                Gather(folder, "vocab.json", vocab, ["vocab.json"]);
                Gather(folder, "merges.txt", merges, ["merges.txt"]);
                return folder;
            }
        }
        RemoveTokenizerLinks(folder);
        return null;
    }

    static void RemoveTokenizerLinks(string folder)
    {
        foreach (var f in new[] { "vocab.json", "merges.txt" })
        {
            var p = Path.Combine(folder, f);
            if (File.Exists(p) || new FileInfo(p).LinkTarget is not null) File.Delete(p);
        }
    }

    /// <summary>Links <paramref name="target"/> into the model folder as <paramref name="linkName"/>, removing the other names of the same role.</summary>
    static void Gather(string folder, string linkName, string target, IEnumerable<string> role)
    {
        foreach (var other in role)
        {
            if (other == linkName) continue;
            var p = Path.Combine(folder, other);
            if (File.Exists(p) || new FileInfo(p).LinkTarget is not null) File.Delete(p);
        }
        var full = Path.GetFullPath(target);
        HubCache.LinkOrCopy(Path.Combine(folder, linkName), full, full);
    }

    /// <summary>The snapshot (commit) folder name of a file in the hub cache.</summary>
    static string CommitOf(string snapshotFile) => Path.GetFileName(Path.GetDirectoryName(snapshotFile)!);

    // A release-URL copy is checked against its published SHA-256 once; a marker (size and time) records that it passed.
    const string UrlMarker = ".url-verified";

    static bool UrlCopyIsGood(string file, string? sha256, string folder, List<string> notes)
    {
        var info = new FileInfo(file);
        string stamp = $"{info.FullName} {info.Length} {info.LastWriteTimeUtc.Ticks}";
        string marker = Path.Combine(folder, UrlMarker);
        if (File.Exists(marker) && File.ReadAllText(marker) == stamp) return true;
        if (sha256 is not null)
        {
            using var fs = File.OpenRead(file);
            var actual = HubDownloader.Hex(System.Security.Cryptography.SHA256.HashData(fs));
            if (!actual.StartsWith(sha256, StringComparison.OrdinalIgnoreCase))
            {
                notes.Add($"{file} does not have the published SHA-256 {sha256}; downloading again");
                return false;
            }
        }
        Directory.CreateDirectory(folder);
        HubCache.WriteAtomically(marker, stamp);
        return true;
    }

    static void MarkUrlCopyGood(string file, string folder)
    {
        var info = new FileInfo(file);
        Directory.CreateDirectory(folder);
        HubCache.WriteAtomically(Path.Combine(folder, UrlMarker), $"{info.FullName} {info.Length} {info.LastWriteTimeUtc.Ticks}");
    }
}
