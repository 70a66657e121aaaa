using System.Reflection;

namespace ClipSharp.ZeroShot;

/// <summary>
/// The class-name lists and prompt templates shipped with ClipSharp (embedded <c>ZeroShot/Data/*.txt</c>), and the
/// resolution of user-supplied template and class-name specifications.
/// </summary>
/// <remarks>
/// Template sets: <c>imagenet</c> (the 80 ImageNet templates, alias <c>imagenet80</c>), <c>imagenet7</c> (the 7-template
/// subset the CLIP authors found by forward selection), <c>simple</c> ("a photo of a {}."), and one set per benchmark
/// dataset as published by the CLIP authors. In a template, <c>{}</c> (or <c>{c}</c>) stands for the class name.
/// </remarks>
public static class PromptSets
{
    const string ResourcePrefix = "ClipSharp.ZeroShot.Data.";
    static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["imagenet80"] = "imagenet",
        ["imagenet1k"] = "imagenet",
        ["pets"] = "oxford_pets",
        ["oxfordpets"] = "oxford_pets",
        ["food-101"] = "food101",
        ["cifar-10"] = "cifar10",
        ["cifar-100"] = "cifar100",
        ["flowers"] = "flowers102",
        ["aircraft"] = "fgvc_aircraft",
        ["stl-10"] = "stl10",
        ["patchcamelyon"] = "pcam",
        ["voc"] = "voc2007",
    };

    static readonly Lazy<string[]> Resources = new(() =>
        typeof(PromptSets).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".txt", StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..^4]).OrderBy(n => n, StringComparer.Ordinal).ToArray());

    /// <summary>Names accepted by <see cref="Templates"/> (without aliases), sorted.</summary>
    public static IReadOnlyList<string> TemplateSetNames =>
        Resources.Value.Where(n => n.EndsWith("_templates", StringComparison.Ordinal)).Select(n => n[..^"_templates".Length]).ToArray();

    /// <summary>Names accepted by <see cref="ClassNames"/> (without aliases), sorted.</summary>
    public static IReadOnlyList<string> ClassNameSetNames =>
        Resources.Value.Where(n => n.EndsWith("_classes", StringComparison.Ordinal)).Select(n => n[..^"_classes".Length]).ToArray();

    static string Canonical(string name)
    {
        var n = name.Trim();
        return Aliases.TryGetValue(n, out var a) ? a : n.ToLowerInvariant();
    }

    /// <summary>True when <paramref name="name"/> (or an alias) is a shipped template set.</summary>
    public static bool IsTemplateSet(string name) => TemplateSetNames.Contains(Canonical(name));

    /// <summary>True when <paramref name="name"/> (or an alias) is a shipped class-name list.</summary>
    public static bool IsClassNameSet(string name) => ClassNameSetNames.Contains(Canonical(name));

    /// <summary>A shipped template set by name (see <see cref="TemplateSetNames"/>).</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static IReadOnlyList<string> Templates(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var n = Canonical(name);
        if (!TemplateSetNames.Contains(n))
            throw new ArgumentException($"unknown template set '{name}'; known sets: {string.Join(", ", TemplateSetNames)}");
        return LoadResource(n + "_templates");
    }

    /// <summary>A shipped class-name list by dataset name (see <see cref="ClassNameSetNames"/>).</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static IReadOnlyList<string> ClassNames(string dataset)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        var n = Canonical(dataset);
        if (!ClassNameSetNames.Contains(n))
            throw new ArgumentException($"unknown class-name list '{dataset}'; known lists: {string.Join(", ", ClassNameSetNames)}");
        return LoadResource(n + "_classes");
    }

    static IReadOnlyList<string> LoadResource(string stem)
    {
        using var stream = typeof(PromptSets).Assembly.GetManifestResourceStream(ResourcePrefix + stem + ".txt")
            ?? throw new FileNotFoundException($"embedded resource {stem}.txt is missing");
        using var reader = new StreamReader(stream);
        return ParseLines(reader.ReadToEnd());
    }

    /// <summary>Splits text into entries: one per line, trimmed of line endings, blank lines and lines starting with '#' skipped.</summary>
    public static IReadOnlyList<string> ParseLines(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var list = new List<string>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#')) continue;
            list.Add(line.Trim());
        }
        return list;
    }

    /// <summary>Reads a file with one entry per line (see <see cref="ParseLines"/>).</summary>
    public static IReadOnlyList<string> ReadLinesFile(string path) => ParseLines(File.ReadAllText(path));

    /// <summary>
    /// Resolves template specifications into one list, in order, without duplicates. Each spec is a shipped set name,
    /// a file with one template per line, or an inline template that contains <c>{}</c> or <c>{c}</c>.
    /// An empty input gives the <c>imagenet</c> set.
    /// </summary>
    /// <exception cref="ArgumentException">A spec is none of the three, or a template lacks the placeholder.</exception>
    public static IReadOnlyList<string> ResolveTemplates(IEnumerable<string>? specs)
    {
        var result = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        bool any = false;
        foreach (var spec in specs ?? [])
        {
            any = true;
            IEnumerable<string> items;
            if (HasPlaceholder(spec)) items = [spec];
            else if (File.Exists(spec)) items = ReadLinesFile(spec);
            else if (IsTemplateSet(spec)) items = Templates(spec);
            else throw new ArgumentException($"template '{spec}' is not a known set ({string.Join(", ", TemplateSetNames)}), not an existing file, and has no {{}} placeholder");
            foreach (var t in items)
            {
                if (!HasPlaceholder(t)) throw new ArgumentException($"template '{t}' has no {{}} placeholder for the class name");
                if (seen.Add(t)) result.Add(t);
            }
        }
        if (!any) return Templates("imagenet");
        if (result.Count == 0) throw new ArgumentException("no templates given");
        return result;
    }

    /// <summary>Resolves class names from a shipped list name or a file with one name per line.</summary>
    /// <exception cref="ArgumentException">Neither a file nor a known list.</exception>
    public static IReadOnlyList<string> ResolveClassNames(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (File.Exists(spec)) return ReadLinesFile(spec);
        if (IsClassNameSet(spec)) return ClassNames(spec);
        throw new ArgumentException($"class names '{spec}' is neither an existing file nor a known list ({string.Join(", ", ClassNameSetNames)})");
    }

    /// <summary>True when the template has a class-name placeholder.</summary>
    public static bool HasPlaceholder(string template) =>
        template.Contains("{}", StringComparison.Ordinal) || template.Contains("{c}", StringComparison.Ordinal);

    /// <summary>Fills a template: every <c>{}</c> and <c>{c}</c> becomes the class name.</summary>
    public static string Fill(string template, string className) =>
        template.Replace("{c}", className, StringComparison.Ordinal).Replace("{}", className, StringComparison.Ordinal);
}
