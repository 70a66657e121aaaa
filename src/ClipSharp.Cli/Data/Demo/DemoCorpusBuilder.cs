using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace ClipSharp.Data.Demo;

/// <summary>Settings of a demo corpus build.</summary>
/// <param name="CacheDir">Where downloaded and unpacked packages are kept.</param>
/// <param name="OutputDir">The corpus folder (images, split CSVs, class lists, <c>manifest.json</c>).</param>
/// <param name="Force">Re-render every image and rewrite every split even when stage markers say they are done.</param>
/// <param name="Seed">Seed of the held-out subgroup choice and of the validation split.</param>
internal sealed record DemoCorpusOptions(string CacheDir, string OutputDir, bool Force = false, int Seed = DemoCorpusBuilder.DefaultSeed)
{
    /// <summary>Progress messages (one line each); null for silence.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Worker threads for image rendering (default: processor count).</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;
}

/// <summary>What a build did.</summary>
/// <param name="Manifest">The corpus manifest (as written, or as found when nothing had to be done).</param>
/// <param name="WasComplete">True when the corpus was already complete and only verified.</param>
/// <param name="Seconds">Wall-clock seconds of this run.</param>
internal sealed record DemoCorpusResult(CorpusManifest Manifest, bool WasComplete, double Seconds);

/// <summary>One image of the corpus with its captions (several captions per image are allowed).</summary>
/// <param name="Image">Path relative to the corpus folder, with '/' separators.</param>
/// <param name="Source">Source name, e.g. <c>openclipart</c> or <c>emoji-noto</c>.</param>
/// <param name="Captions">Captions, best first.</param>
/// <param name="Concept">Emoji concept key (code points) or Fashion-MNIST label index; null otherwise.</param>
/// <param name="Label">Class name (emoji name, Fashion-MNIST class); null otherwise.</param>
/// <param name="Group">Emoji group; null otherwise.</param>
/// <param name="Subgroup">Emoji subgroup; null otherwise.</param>
internal sealed record CorpusItem(string Image, string Source, IReadOnlyList<string> Captions,
    string? Concept = null, string? Label = null, string? Group = null, string? Subgroup = null);

/// <summary>An emoji concept: one fully-qualified emoji with its name and CLDR keywords.</summary>
/// <param name="Entry">The emoji-test.txt entry.</param>
/// <param name="Keywords">CLDR keywords other than the name itself.</param>
internal sealed record EmojiConcept(EmojiEntry Entry, IReadOnlyList<string> Keywords)
{
    /// <summary>Captions for any picture of this emoji: <c>an emoji of NAME</c>, then <c>NAME, KEYWORDS</c> when there are keywords.</summary>
    public IReadOnlyList<string> Captions()
    {
        var list = new List<string> { $"an emoji of {Entry.Name}" };
        if (Keywords.Count > 0) list.Add($"{Entry.Name}, {string.Join(", ", Keywords)}");
        return list;
    }
}

/// <summary>
/// Builds the demo image–caption corpus and its evaluation splits from Debian packages and one npm package:
/// Tux Paint stamps, OpenClipArt, emoji from five artists (Noto, EmojiOne, OpenMoji colour for training; Symbola and
/// OpenMoji black line art only for the distribution-shift split) and Fashion-MNIST (cross-domain split).
/// Deterministic and resumable: packages are cached and checksummed, images are written under temporary names and
/// renamed, each stage leaves a marker, and a run over a complete corpus only verifies it.
/// </summary>
internal sealed class DemoCorpusBuilder(DemoCorpusOptions options)
{
    /// <summary>Default seed.</summary>
    public const int DefaultSeed = 20240229;

    /// <summary>Side of emoji images in pixels.</summary>
    public const int EmojiSize = 64;

    /// <summary>Side of clip-art and stamp images in pixels.</summary>
    public const int PictureSize = 128;

    /// <summary>Margin left around font-rendered emoji, in pixels of the final image.</summary>
    public const int FontEmojiMargin = 3;

    /// <summary>Fraction of training images held out as the validation split.</summary>
    public const double ValidationFraction = 0.02;

    /// <summary>OpenClipArt titles used by more than this many files are collection names, not descriptions.</summary>
    public const int MaxTitleRepeats = 30;

    /// <summary>The pinned OpenMoji npm release.</summary>
    public const string OpenMojiVersion = "17.0.0";

    /// <summary>npm integrity of the pinned OpenMoji tarball.</summary>
    public const string OpenMojiIntegrity = "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==";

    /// <summary>Emoji artists seen in training.</summary>
    public static readonly string[] TrainArtists = ["noto", "emojione", "openmoji-color"];

    /// <summary>Emoji artists only in the distribution-shift split.</summary>
    public static readonly string[] ShiftArtists = ["symbola", "openmoji-black"];

    /// <summary>The Fashion-MNIST class names by label index.</summary>
    public static readonly string[] FashionClasses = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Debian packages the build reads.</summary>
    public static readonly string[] DebianPackages =
    [
        "tuxpaint-stamps-default", "openclipart-svg", "openclipart-png", "fonts-noto-color-emoji", "ruby-gemojione",
        "fonts-symbola", "unicode-data", "unicode-cldr-core", "dataset-fashion-mnist", "librsvg2-bin",
    ];

    /// <summary>The build stages, one per image source, in build order.</summary>
    public static readonly string[] StageNames =
    [
        "tuxpaint-stamps", "openclipart", "emoji-noto", "emoji-emojione", "emoji-openmoji-color", "emoji-openmoji-black", "emoji-symbola", "fashion-mnist",
    ];

    private const string BuildDir = ".build";
    // Part of every stage marker: bump it whenever a stage's output changes for the same packages, so corpora built by
    // older code are rebuilt instead of reused. 2: the 16-Mpixel decode limit drops one oversized OpenClipArt PNG
    // (5846 × 3720) that stages built before that limit still held, which is why two "cold" builds once differed;
    // two builds by the same code are byte-identical (all images, splits and the manifest). 3: format 2 stages could
    // still hold that image, because a rebuilt stage kept the images already on disk; a stage whose settings changed
    // now renders all its images again.
    private const int StageFormat = 3;
    private static readonly JsonSerializerOptions JsonLines = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    private readonly Dictionary<string, SourceCounts> _counts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _roots = new(StringComparer.Ordinal);
    private readonly List<SourcePackage> _packages = [];

    private void Log(string message) => options.Log?.Invoke(message);

    /// <summary>
    /// The default cache folder: <c>$CLIPSHARP_CACHE</c> when set, else <c>.cache/demo-corpus</c> under the repository
    /// root (the nearest folder above <paramref name="start"/> holding <c>ClipSharp.slnx</c>), else under <paramref name="start"/>.
    /// </summary>
    public static string DefaultCacheDir(string start)
    {
        var env = Environment.GetEnvironmentVariable("CLIPSHARP_CACHE");
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ClipSharp.slnx"))) return Path.Combine(dir.FullName, ".cache", "demo-corpus");
        return Path.Combine(Path.GetFullPath(start), ".cache", "demo-corpus");
    }

    /// <summary>The default corpus folder: <c>corpus</c> inside the cache folder.</summary>
    public static string DefaultOutputDir(string cacheDir) => Path.Combine(cacheDir, "corpus");

    /// <summary>Runs the build (or only verifies a complete corpus) and returns the manifest.</summary>
    public DemoCorpusResult Build()
    {
        var clock = Stopwatch.StartNew();
        var output = Path.GetFullPath(options.OutputDir);
        var manifestPath = Path.Combine(output, "manifest.json");
        var doneMarker = Path.Combine(output, BuildDir, "complete.json");
        bool stagesDone = StageNames.All(n => File.Exists(Path.Combine(output, BuildDir, n + ".done.json")));
        if (!options.Force && stagesDone && File.Exists(doneMarker) && File.Exists(manifestPath) && ReadMarkerSettings(doneMarker) == FinalSettings())
        {
            var existing = CorpusManifest.Read(manifestPath);
            Log("corpus is complete; verifying");
            Verify(output, existing);
            return new DemoCorpusResult(existing, true, clock.Elapsed.TotalSeconds);
        }
        if (File.Exists(doneMarker)) File.Delete(doneMarker);

        Log("packages:");
        var cache = new PackageCache(Path.GetFullPath(options.CacheDir), m => Log(m));
        foreach (var name in DebianPackages)
        {
            var (root, pkg) = cache.Deb(name);
            _roots[name] = root;
            _packages.Add(pkg);
            Log($"  {name} {pkg.Version} ({pkg.License})");
        }
        var (omRoot, omPkg) = cache.Npm("openmoji", OpenMojiVersion, OpenMojiIntegrity);
        _roots["openmoji"] = omRoot;
        _packages.Add(omPkg);
        Log($"  openmoji {omPkg.Version} ({omPkg.License})");
        CopyLicences(output);

        var rsvg = SvgRasterizer.Locate(_roots["librsvg2-bin"]);
        var concepts = LoadEmojiConcepts();
        Log($"emoji concepts: {concepts.Count}");

        var items = new List<CorpusItem>();
        items.AddRange(Stage(output, "tuxpaint-stamps", () => BuildStamps(output, rsvg)));
        items.AddRange(Stage(output, "openclipart", () => BuildClipArt(output)));
        items.AddRange(Stage(output, "emoji-noto", () => BuildFontEmoji(output, "noto", Path.Combine(_roots["fonts-noto-color-emoji"], "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"), concepts, keepVariationSelectors: true)));
        items.AddRange(Stage(output, "emoji-emojione", () => BuildEmojiOne(output, concepts)));
        items.AddRange(Stage(output, "emoji-openmoji-color", () => BuildOpenMoji(output, "openmoji-color", "color", concepts, rsvg)));
        items.AddRange(Stage(output, "emoji-openmoji-black", () => BuildOpenMoji(output, "openmoji-black", "black", concepts, rsvg)));
        items.AddRange(Stage(output, "emoji-symbola", () => BuildFontEmoji(output, "symbola", Path.Combine(_roots["fonts-symbola"], "usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"), concepts, keepVariationSelectors: false)));
        items.AddRange(Stage(output, "fashion-mnist", () => BuildFashionMnist(output)));

        var manifest = new CorpusManifest
        {
            Seed = options.Seed,
            ImageSizes = new() { ["emoji"] = EmojiSize, ["clipart_and_stamps"] = PictureSize, ["fashion_mnist"] = 28 },
            TrainArtists = [.. TrainArtists],
            ShiftArtists = [.. ShiftArtists],
            Packages = _packages,
        };
        foreach (var (k, v) in _counts) manifest.Sources[k] = v;
        WriteSplits(output, items, concepts, manifest);
        manifest.BuiltAt = DateTimeOffset.UtcNow;
        manifest.BuildSeconds = Math.Round(clock.Elapsed.TotalSeconds, 1);
        manifest.Write(manifestPath);
        WriteMarker(doneMarker, FinalSettings(), null);
        Log("verifying");
        Verify(output, manifest);
        return new DemoCorpusResult(manifest, false, clock.Elapsed.TotalSeconds);
    }

    private string FinalSettings() => $"format={StageFormat};seed={options.Seed};openmoji={OpenMojiVersion};splits=root";

    // ---------------------------------------------------------------- stages

    private sealed record StageMarker(string Settings, SourceCounts? Counts);

    private IEnumerable<CorpusItem> Stage(string output, string name, Func<(List<CorpusItem> Items, SourceCounts Counts)> work)
    {
        var dir = Path.Combine(output, BuildDir);
        var marker = Path.Combine(dir, name + ".done.json");
        var itemsFile = Path.Combine(dir, name + ".items.jsonl");
        var settings = $"format={StageFormat};packages={string.Join(",", _packages.Select(p => p.Name + "=" + p.Version))}";
        if (!options.Force && File.Exists(marker) && File.Exists(itemsFile) && ReadMarkerSettings(marker) == settings)
        {
            var stored = JsonSerializer.Deserialize<StageMarker>(File.ReadAllText(marker))!;
            var loaded = File.ReadLines(itemsFile).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<CorpusItem>(l, JsonLines)!).ToList();
            _counts[name] = stored.Counts ?? new SourceCounts();
            Log($"{name}: done before ({loaded.Count} images)");
            return loaded;
        }
        // Images already in the corpus are kept when an interrupted stage resumes under the same settings; a stage
        // last built or started under other settings (older code or packages) renders all its images again.
        var started = Path.Combine(dir, name + ".started.json");
        _restage = (File.Exists(marker) && ReadMarkerSettings(marker) != settings) || (File.Exists(started) && ReadMarkerSettings(started) != settings);
        if (File.Exists(marker)) File.Delete(marker);
        Directory.CreateDirectory(dir);
        WriteMarker(started, settings, null);
        var clock = Stopwatch.StartNew();
        Log($"{name}: building{(_restage ? " (settings changed since the last build: all images again)" : "")}");
        var (items, counts) = work();
        _restage = false;
        counts.Images = items.Count;
        counts.Captions = items.Sum(i => i.Captions.Count);
        _counts[name] = counts;
        var sb = new StringBuilder();
        foreach (var item in items) sb.Append(JsonSerializer.Serialize(item, JsonLines)).Append('\n');
        CorpusImages.WriteAtomic(itemsFile, Encoding.UTF8.GetBytes(sb.ToString()));
        WriteMarker(marker, settings, counts);
        Log($"{name}: {counts.Images} images, {counts.Captions} captions, {counts.Unreadable} unreadable, {counts.Filtered} filtered ({clock.Elapsed.TotalSeconds:F1} s)");
        return items;
    }

    private static string? ReadMarkerSettings(string path)
    {
        try { return JsonSerializer.Deserialize<StageMarker>(File.ReadAllText(path))?.Settings; }
        catch (JsonException) { return null; }
    }

    private static void WriteMarker(string path, string settings, SourceCounts? counts) =>
        CorpusImages.WriteAtomic(path, JsonSerializer.SerializeToUtf8Bytes(new StageMarker(settings, counts), new JsonSerializerOptions { WriteIndented = true }));

    private enum Outcome { Written, Unreadable, Filtered }

    /// <summary>Renders jobs in parallel; keeps input order; an existing output file counts as written unless forced.</summary>
    private (List<CorpusItem>, SourceCounts) Render<TJob>(string output, IReadOnlyList<TJob> jobs, Func<TJob, CorpusItem?> plan, Func<TJob, string, Outcome> render, int filteredBefore = 0)
    {
        var results = new CorpusItem?[jobs.Count];
        var outcomes = new Outcome[jobs.Count];
        int done = 0;
        Parallel.For(0, jobs.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Parallelism) }, i =>
        {
            var item = plan(jobs[i]);
            if (item is null) { outcomes[i] = Outcome.Filtered; return; }
            var dest = Path.Combine(output, item.Image);
            var outcome = !options.Force && File.Exists(dest) ? Outcome.Written : render(jobs[i], dest);
            outcomes[i] = outcome;
            if (outcome == Outcome.Written) results[i] = item;
            var n = Interlocked.Increment(ref done);
            if (n % 2000 == 0) Log($"  {n}/{jobs.Count}");
        });
        var counts = new SourceCounts
        {
            Unreadable = outcomes.Count(o => o == Outcome.Unreadable),
            Filtered = filteredBefore + outcomes.Count(o => o == Outcome.Filtered),
        };
        return (results.Where(r => r is not null).Select(r => r!).ToList(), counts);
    }

    private void ClearImages(string output, string relDir)
    {
        var dir = Path.Combine(output, relDir);
        if ((options.Force || _restage) && Directory.Exists(dir)) Directory.Delete(dir, true);
    }

    /// <summary>True while a stage runs whose previous build used other settings (see <see cref="Stage"/>).</summary>
    private bool _restage;

    private static string Rel(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

    private static IEnumerable<string> RegularFiles(string root, string pattern) =>
        Directory.EnumerateFiles(root, pattern, SearchOption.AllDirectories)
            .Where(f => new FileInfo(f).LinkTarget is null)
            .Order(StringComparer.Ordinal);

    // ---------------------------------------------------------------- Tux Paint stamps

    private (List<CorpusItem>, SourceCounts) BuildStamps(string output, SvgRasterizer rsvg)
    {
        ClearImages(output, "images/stamps");
        var root = Path.Combine(_roots["tuxpaint-stamps-default"], "usr/share/tuxpaint/stamps");
        var jobs = RegularFiles(root, "*.txt").ToList();
        string? ImageOf(string txt)
        {
            var stem = txt[..^4];
            return File.Exists(stem + ".png") ? stem + ".png" : File.Exists(stem + ".svg") ? stem + ".svg" : null;
        }
        CorpusItem? Plan(string txt)
        {
            var caption = StampCaption(File.ReadLines(txt).FirstOrDefault());
            if (caption is null || ImageOf(txt) is null) return null;
            return new CorpusItem($"images/stamps/{Rel(root, txt)[..^4]}.png", "tuxpaint-stamps", [caption]);
        }
        var staged = StageSvgs(output, "stamps", jobs, t => ImageOf(t) is { } img && img.EndsWith(".svg", StringComparison.Ordinal) ? img : null, Plan, rsvg, PictureSize);
        var result = Render(output, jobs, Plan,
            (txt, dest) =>
            {
                var image = ImageOf(txt)!;
                bool ok = image.EndsWith(".svg", StringComparison.Ordinal)
                    ? staged.TryGetValue(txt, out var png) && CorpusImages.TryNormalizeFile(png, dest, PictureSize)
                    : CorpusImages.TryNormalizeFile(image, dest, PictureSize);
                return ok ? Outcome.Written : Outcome.Unreadable;
            });
        DeleteStaged(output, "stamps");
        return result;
    }

    private static void DeleteStaged(string output, string name)
    {
        var dir = Path.Combine(output, BuildDir, "rsvg", name);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
    }

    /// <summary>
    /// Rasterises, in one batch, the SVGs of the jobs whose corpus image is not there yet; returns job → staged PNG.
    /// Staged files live under <c>.build/rsvg/NAME</c> and are normalised into the corpus by the caller.
    /// </summary>
    private Dictionary<TJob, string> StageSvgs<TJob>(string output, string name, IReadOnlyList<TJob> jobs, Func<TJob, string?> svgOf, Func<TJob, CorpusItem?> plan, SvgRasterizer rsvg, int size)
        where TJob : notnull
    {
        var dir = Path.Combine(output, BuildDir, "rsvg", name);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        var staged = new Dictionary<TJob, string>();
        var batch = new List<(string, string)>();
        for (int i = 0; i < jobs.Count; i++)
        {
            if (svgOf(jobs[i]) is not { } svg || plan(jobs[i]) is not { } item) continue;
            if (!options.Force && File.Exists(Path.Combine(output, item.Image))) continue;
            var png = Path.Combine(dir, $"{i}.png");
            staged[jobs[i]] = png;
            batch.Add((svg, png));
        }
        rsvg.RasterizeBatch(batch, size, Math.Max(1, options.Parallelism));
        return staged;
    }

    /// <summary>The caption of a Tux Paint stamp from the first line of its description: trimmed of dashes and quotes; null when it has no word.</summary>
    public static string? StampCaption(string? firstLine)
    {
        if (firstLine is null) return null;
        var c = firstLine.Trim().TrimStart('-', '–', '—', '"', '\'', ' ').Trim();
        return c.Count(char.IsLetter) >= 3 ? c : null;
    }

    // ---------------------------------------------------------------- OpenClipArt

    private (List<CorpusItem>, SourceCounts) BuildClipArt(string output)
    {
        ClearImages(output, "images/clipart");
        var svgRoot = Path.Combine(_roots["openclipart-svg"], "usr/share/openclipart/svg");
        var pngRoot = Path.Combine(_roots["openclipart-png"], "usr/share/openclipart/png");
        var svgs = RegularFiles(svgRoot, "*.svg").ToList();
        var meta = new ClipArtMetadata?[svgs.Count];
        int unreadableMeta = 0;
        Parallel.For(0, svgs.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Parallelism) }, i =>
        {
            try { meta[i] = ClipArtMetadataReader.Read(svgs[i]); }
            catch (Exception e) when (e is System.Xml.XmlException or IOException) { Interlocked.Increment(ref unreadableMeta); }
        });
        var repeats = meta.Where(m => m?.Title is not null).GroupBy(m => m!.Title!.ToLowerInvariant()).ToDictionary(g => g.Key, g => g.Count());
        var jobs = Enumerable.Range(0, svgs.Count).ToList();
        var (items, counts) = Render(output, jobs,
            i =>
            {
                var m = meta[i];
                if (m?.Title is null || !ClipArtMetadataReader.IsDescriptiveTitle(m.Title) || repeats[m.Title.ToLowerInvariant()] > MaxTitleRepeats) return null;
                var rel = Rel(svgRoot, svgs[i])[..^4];
                if (!File.Exists(Path.Combine(pngRoot, rel + ".png"))) return null;
                return new CorpusItem($"images/clipart/{rel}.png", "openclipart", ClipArtCaptions(m));
            },
            (i, dest) => CorpusImages.TryNormalizeFile(Path.Combine(pngRoot, Rel(svgRoot, svgs[i])[..^4] + ".png"), dest, PictureSize) ? Outcome.Written : Outcome.Unreadable);
        counts.Unreadable += unreadableMeta;
        counts.Filtered -= unreadableMeta;
        return (items, counts);
    }

    /// <summary>Captions of a clip-art picture: the title; the title with its cleaned keywords; a short descriptive description.</summary>
    public static IReadOnlyList<string> ClipArtCaptions(ClipArtMetadata m)
    {
        var title = m.Title!.Trim();
        var captions = new List<string> { title };
        var keywords = ClipArtMetadataReader.CleanKeywords(m.Keywords, title);
        if (keywords.Count > 0) captions.Add($"{title}, {string.Join(", ", keywords)}");
        var d = m.Description?.Trim();
        if (d is not null && d.Length <= 150 && !d.Equals(title, StringComparison.OrdinalIgnoreCase) && ClipArtMetadataReader.IsDescriptiveTitle(d))
            captions.Add(d);
        return captions;
    }

    // ---------------------------------------------------------------- emoji

    private IReadOnlyList<EmojiConcept> LoadEmojiConcepts()
    {
        var entries = EmojiTestFile.Read(Path.Combine(_roots["unicode-data"], "usr/share/unicode/emoji/emoji-test.txt"));
        var cldr = Path.Combine(_roots["unicode-cldr-core"], "usr/share/unicode/cldr/common");
        var annotations = CldrAnnotations.Read(Path.Combine(cldr, "annotations/en.xml"), Path.Combine(cldr, "annotationsDerived/en.xml"));
        return SelectConcepts(entries, annotations);
    }

    /// <summary>
    /// The emoji concepts of the corpus: fully-qualified emoji outside the Component group and without skin-tone
    /// modifiers (those are near-duplicates of their base emoji), each with up to six CLDR keywords other than its name.
    /// </summary>
    public static IReadOnlyList<EmojiConcept> SelectConcepts(IEnumerable<EmojiEntry> entries, IReadOnlyDictionary<string, CldrAnnotation> annotations)
    {
        var list = new List<EmojiConcept>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            if (e.Status != "fully-qualified" || e.Group == "Component" || e.HasSkinTone || !seen.Add(e.Key)) continue;
            var ann = CldrAnnotations.Find(annotations, e.Text);
            var keywords = (ann?.Keywords ?? [])
                .Where(k => !k.Equals(e.Name, StringComparison.OrdinalIgnoreCase))
                .Take(6).ToList();
            list.Add(new EmojiConcept(e, keywords));
        }
        return list;
    }

    private static CorpusItem EmojiItem(EmojiConcept c, string artist) =>
        new($"images/emoji/{artist}/{c.Entry.Key}.png", "emoji-" + artist, c.Captions(), c.Entry.Key, c.Entry.Name, c.Entry.Group, c.Entry.Subgroup);

    private (List<CorpusItem>, SourceCounts) BuildFontEmoji(string output, string artist, string fontPath, IReadOnlyList<EmojiConcept> concepts, bool keepVariationSelectors)
    {
        ClearImages(output, $"images/emoji/{artist}");
        if (!File.Exists(fontPath)) throw new DemoCorpusException($"font not found: {fontPath}");
        using var probe = new EmojiFontRenderer(fontPath);
        var renderers = new ThreadLocal<EmojiFontRenderer>(() => new EmojiFontRenderer(fontPath), trackAllValues: true);
        try
        {
            string TextOf(EmojiConcept c) => keepVariationSelectors ? c.Entry.Text : c.Entry.Text.Replace("\uFE0F", "", StringComparison.Ordinal);
            return Render(output, concepts,
                c =>
                {
                    // A text font has no pictures for sequences: keep single code points only.
                    if (!keepVariationSelectors && char.ConvertToUtf32(TextOf(c), 0) is var cp && char.ConvertFromUtf32(cp) != TextOf(c)) return null;
                    return EmojiItem(c, artist);
                },
                (c, dest) => renderers.Value!.TryRender(TextOf(c), dest, EmojiSize, FontEmojiMargin) ? Outcome.Written : Outcome.Filtered);
        }
        finally
        {
            foreach (var r in renderers.Values) r.Dispose();
            renderers.Dispose();
        }
    }

    private (List<CorpusItem>, SourceCounts) BuildEmojiOne(string output, IReadOnlyList<EmojiConcept> concepts)
    {
        ClearImages(output, "images/emoji/emojione");
        var dir = Path.Combine(_roots["ruby-gemojione"], "usr/share/rubygems-integration/all/gems");
        var assets = Directory.GetDirectories(dir, "gemojione-*").Select(d => Path.Combine(d, "assets", "png")).FirstOrDefault(Directory.Exists)
            ?? throw new DemoCorpusException($"ruby-gemojione has no assets/png folder under {dir}");
        string? FileOf(EmojiConcept c) => EmojiFile(assets, c.Entry, ".png");
        return Render(output, concepts,
            c => FileOf(c) is null ? null : EmojiItem(c, "emojione"),
            (c, dest) => CorpusImages.TryNormalizeFile(FileOf(c)!, dest, EmojiSize) ? Outcome.Written : Outcome.Unreadable);
    }

    private (List<CorpusItem>, SourceCounts) BuildOpenMoji(string output, string artist, string style, IReadOnlyList<EmojiConcept> concepts, SvgRasterizer rsvg)
    {
        ClearImages(output, $"images/emoji/{artist}");
        var dir = Path.Combine(_roots["openmoji"], "package", style, "svg");
        if (!Directory.Exists(dir)) throw new DemoCorpusException($"openmoji has no {style}/svg folder");
        CorpusItem? Plan(EmojiConcept c) => EmojiFile(dir, c.Entry, ".svg") is null ? null : EmojiItem(c, artist);
        var staged = StageSvgs(output, artist, concepts, c => EmojiFile(dir, c.Entry, ".svg"), Plan, rsvg, EmojiSize);
        var result = Render(output, concepts, Plan,
            (c, dest) => staged.TryGetValue(c, out var png) && CorpusImages.TryNormalizeFile(png, dest, EmojiSize) ? Outcome.Written : Outcome.Unreadable);
        DeleteStaged(output, artist);
        return result;
    }

    /// <summary>Finds an emoji's file named by its code points (as written, or without U+FE0F), in upper or lower case hex.</summary>
    private static string? EmojiFile(string dir, EmojiEntry e, string ext)
    {
        var full = e.Key;
        var bare = EmojiTestFile.KeyOf(e.Codepoints.Where(c => c != 0xFE0F));
        foreach (var k in new[] { full, bare, full.ToLowerInvariant(), bare.ToLowerInvariant() })
        {
            var p = Path.Combine(dir, k + ext);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    // ---------------------------------------------------------------- Fashion-MNIST

    private (List<CorpusItem>, SourceCounts) BuildFashionMnist(string output)
    {
        ClearImages(output, "images/fashion-mnist");
        var dir = Path.Combine(_roots["dataset-fashion-mnist"], "usr/share/datasets/fashion-mnist");
        var images = IdxFile.Read(Path.Combine(dir, "t10k-images-idx3-ubyte.gz"));
        var labels = IdxFile.Read(Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        if (images.Dimensions.Length != 3 || labels.Count != images.Count)
            throw new DemoCorpusException("Fashion-MNIST test files have unexpected shapes");
        int h = images.Dimensions[1], w = images.Dimensions[2];
        var jobs = Enumerable.Range(0, images.Count).ToList();
        return Render(output, jobs,
            i =>
            {
                int label = labels.Data[i];
                if (label >= FashionClasses.Length) return null;
                return new CorpusItem($"images/fashion-mnist/test/{i:D5}.png", "fashion-mnist", [FashionClasses[label]], label.ToString(System.Globalization.CultureInfo.InvariantCulture), FashionClasses[label]);
            },
            (i, dest) =>
            {
                // Fashion-MNIST stores ink as high values on black; invert to dark ink on white like the rest of the corpus.
                CorpusImages.WriteGray(images.Item(i), w, h, dest, invert: true);
                return Outcome.Written;
            });
    }

    // ---------------------------------------------------------------- splits

    private void WriteSplits(string output, List<CorpusItem> items, IReadOnlyList<EmojiConcept> concepts, CorpusManifest manifest)
    {
        // Split files sit at the corpus root so the image paths in them are relative to the file itself, the
        // convention every ClipSharp dataset reader follows.
        var splitDir = output;
        var oldSplitDir = Path.Combine(output, "splits");
        if (Directory.Exists(oldSplitDir)) Directory.Delete(oldSplitDir, recursive: true);
        var trainSources = new HashSet<string>(TrainArtists.Select(a => "emoji-" + a), StringComparer.Ordinal);
        var shiftSources = new HashSet<string>(ShiftArtists.Select(a => "emoji-" + a), StringComparer.Ordinal);

        var subgroups = concepts.GroupBy(c => (c.Entry.Group, c.Entry.Subgroup))
            .Select(g => new SubgroupInfo(g.Key.Group, g.Key.Subgroup, g.Count()));
        var heldOut = HeldOutSelection.Choose(subgroups, options.Seed);
        manifest.HeldOutSubgroups = heldOut.Select(s => new HeldOutSubgroup(s.Group, s.Subgroup, s.Concepts)).ToList();
        var heldSet = new HashSet<(string, string)>(heldOut.Select(s => (s.Group, s.Subgroup)));
        bool IsHeld(CorpusItem i) => heldSet.Contains((i.Group ?? "", i.Subgroup ?? ""));

        var trainPool = items.Where(i => i.Source is "tuxpaint-stamps" or "openclipart" || (trainSources.Contains(i.Source) && !IsHeld(i))).ToList();
        var val = trainPool.Where(i => HeldOutSelection.SeededUnit(options.Seed, i.Image) < ValidationFraction).ToList();
        var valSet = new HashSet<string>(val.Select(i => i.Image), StringComparer.Ordinal);
        var train = trainPool.Where(i => !valSet.Contains(i.Image)).ToList();

        string[] pairHeader = ["image", "caption"];
        IEnumerable<string[]> Pairs(IEnumerable<CorpusItem> list) => list.SelectMany(i => i.Captions.Select(c => new[] { i.Image, c }));
        manifest.Splits["train"] = new SplitInfo
        {
            File = "train.csv", Rows = Csv.Write(Path.Combine(splitDir, "train.csv"), pairHeader, Pairs(train)), Images = train.Count,
            Description = "image-caption pairs for training (stamps, clip art, emoji by the training artists outside the held-out subgroups); one row per caption",
        };
        manifest.Splits["val"] = new SplitInfo
        {
            File = "val.csv", Rows = Csv.Write(Path.Combine(splitDir, "val.csv"), pairHeader, Pairs(val)), Images = val.Count,
            Description = $"validation pairs: a seeded {ValidationFraction:P0} of the training images, never in train.csv",
        };

        // Zero-shot: held-out subgroups, training artists; classes are the held-out emoji names in emoji-test order.
        var conceptOrder = concepts.Select((c, i) => (c.Entry.Key, i)).ToDictionary(t => t.Key, t => t.i, StringComparer.Ordinal);
        var zeroShot = items.Where(i => trainSources.Contains(i.Source) && IsHeld(i)).ToList();
        manifest.Splits["zeroshot"] = ClassificationSplit(output, "zeroshot", zeroShot, conceptOrder,
            "emoji of whole subgroups held out of training, drawn by the training artists; N-way over the held-out emoji names");

        // Distribution shift: trained concepts drawn by artists never seen in training.
        var trainedConcepts = new HashSet<string>(train.Concat(val).Where(i => i.Concept is not null).Select(i => i.Concept!), StringComparer.Ordinal);
        var shift = items.Where(i => shiftSources.Contains(i.Source) && !IsHeld(i) && trainedConcepts.Contains(i.Concept!)).ToList();
        manifest.Splits["shift"] = ClassificationSplit(output, "shift", shift, conceptOrder,
            "trained emoji concepts drawn by unseen artists (Symbola outlines, OpenMoji black line art); N-way over their names");

        var fashion = items.Where(i => i.Source == "fashion-mnist").ToList();
        var fashionOrder = FashionClasses.Select((c, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), i)).ToDictionary(t => t.Item1, t => t.i, StringComparer.Ordinal);
        manifest.Splits["fashion-mnist"] = ClassificationSplit(output, "fashion-mnist", fashion, fashionOrder,
            "Fashion-MNIST test set (28x28, inverted to dark on white) as a 10-way zero-shot task over its class names", keepAllClasses: true);
    }

    private static SplitInfo ClassificationSplit(string output, string name, List<CorpusItem> items, Dictionary<string, int> order, string description, bool keepAllClasses = false)
    {
        var classes = items.Where(i => i.Concept is not null).Select(i => (Concept: i.Concept!, Label: i.Label!)).Distinct()
            .OrderBy(c => order.GetValueOrDefault(c.Concept, int.MaxValue)).ThenBy(c => c.Concept, StringComparer.Ordinal).ToList();
        if (keepAllClasses) classes = order.OrderBy(kv => kv.Value).Select(kv => (kv.Key, items.First(i => i.Concept == kv.Key).Label!)).ToList();
        var index = classes.Select((c, i) => (c.Concept, i)).ToDictionary(t => t.Concept, t => t.i, StringComparer.Ordinal);
        var rows = items.OrderBy(i => index[i.Concept!]).ThenBy(i => i.Image, StringComparer.Ordinal)
            .Select(i => new[] { i.Image, i.Captions[0], i.Label!, index[i.Concept!].ToString(System.Globalization.CultureInfo.InvariantCulture), i.Source });
        var file = $"{name}.csv";
        int n = Csv.Write(Path.Combine(output, file), ["image", "caption", "label", "label_index", "source"], rows);
        var classesFile = $"{name}-classes.txt";
        CorpusImages.WriteAtomic(Path.Combine(output, classesFile), Encoding.UTF8.GetBytes(string.Concat(classes.Select(c => c.Label + "\n"))));
        return new SplitInfo { File = file, Rows = n, Images = n, ClassesFile = classesFile, Classes = classes.Count, Description = description };
    }

    // ---------------------------------------------------------------- licences, verification, summary

    private void CopyLicences(string output)
    {
        var dir = Path.Combine(output, "licenses");
        Directory.CreateDirectory(dir);
        foreach (var p in _packages)
        {
            var src = p.Kind == "deb"
                ? Path.Combine(_roots[p.Name], "usr/share/doc", p.Name, "copyright")
                : Path.Combine(_roots[p.Name], "package", "LICENSE.txt");
            if (File.Exists(src)) CorpusImages.WriteAtomic(Path.Combine(dir, p.Name + ".txt"), File.ReadAllBytes(src));
        }
    }

    /// <summary>Checks that every split file has the recorded number of rows and every image it names exists.</summary>
    public static void Verify(string output, CorpusManifest manifest)
    {
        int missing = 0;
        string? firstMissing = null;
        foreach (var (name, split) in manifest.Splits)
        {
            var path = Path.Combine(output, split.File);
            if (!File.Exists(path)) throw new DemoCorpusException($"split {name}: {split.File} is missing; rebuild with --force");
            var rows = Csv.Parse(File.ReadAllText(path));
            if (rows.Count - 1 != split.Rows) throw new DemoCorpusException($"split {name}: {split.File} has {rows.Count - 1} rows, manifest says {split.Rows}; rebuild with --force");
            foreach (var image in rows.Skip(1).Select(r => r[0]).Distinct(StringComparer.Ordinal))
                if (!File.Exists(Path.Combine(output, image))) { missing++; firstMissing ??= image; }
        }
        if (missing > 0) throw new DemoCorpusException($"{missing} images named by the splits are missing (e.g. {firstMissing}); rebuild with --force");
    }

    /// <summary>A human-readable summary of a manifest: packages, counts per source and split, held-out subgroups.</summary>
    public static string Summary(CorpusManifest m, string output)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"demo corpus: {output}");
        sb.AppendLine($"built {m.BuiltAt:u} in {m.BuildSeconds:F0} s, seed {m.Seed}");
        sb.AppendLine("packages:");
        foreach (var p in m.Packages) sb.AppendLine($"  {p.Name,-26} {p.Version,-28} {p.License}");
        sb.AppendLine("sources:                     images  captions  unreadable  filtered");
        foreach (var (k, v) in m.Sources) sb.AppendLine($"  {k,-26} {v.Images,7} {v.Captions,9} {v.Unreadable,11} {v.Filtered,9}");
        sb.AppendLine("splits:                        rows    images   classes");
        foreach (var (k, v) in m.Splits) sb.AppendLine($"  {k,-26} {v.Rows,7} {v.Images,9} {(v.Classes?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"),9}");
        sb.AppendLine($"held-out subgroups ({m.HeldOutSubgroups.Count}, {m.HeldOutSubgroups.Sum(s => s.Concepts)} concepts):");
        foreach (var s in m.HeldOutSubgroups) sb.AppendLine($"  {s.Group} / {s.Subgroup} ({s.Concepts})");
        return sb.ToString();
    }
}
