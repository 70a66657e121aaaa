using System.Xml;

namespace ClipSharp.Data.Demo;

/// <summary>CLDR annotations of one character sequence: search keywords and the text-to-speech name.</summary>
/// <param name="Keywords">Keywords in file order (the <c>a | b | c</c> list).</param>
/// <param name="Tts">The <c>type="tts"</c> short name, or null.</param>
internal sealed record CldrAnnotation(IReadOnlyList<string> Keywords, string? Tts);

/// <summary>Parser for CLDR annotation files such as <c>common/annotations/en.xml</c>.</summary>
internal static class CldrAnnotations
{
    /// <summary>Reads one or more annotation files; entries of later files fill in what earlier ones lack.</summary>
    public static Dictionary<string, CldrAnnotation> Read(params string[] paths)
    {
        var merged = new Dictionary<string, CldrAnnotation>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            using var stream = File.OpenRead(path);
            foreach (var (cp, ann) in Parse(stream))
            {
                if (!merged.TryGetValue(cp, out var old)) merged[cp] = ann;
                else merged[cp] = new CldrAnnotation(old.Keywords.Count > 0 ? old.Keywords : ann.Keywords, old.Tts ?? ann.Tts);
            }
        }
        return merged;
    }

    /// <summary>
    /// Parses <c>&lt;annotation cp="…"&gt;kw | kw&lt;/annotation&gt;</c> and
    /// <c>&lt;annotation cp="…" type="tts"&gt;name&lt;/annotation&gt;</c> elements. The DTD is not fetched.
    /// </summary>
    public static Dictionary<string, CldrAnnotation> Parse(Stream xml)
    {
        var keywords = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var tts = new Dictionary<string, string>(StringComparer.Ordinal);
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null, IgnoreComments = true };
        using var reader = XmlReader.Create(xml, settings);
        // ReadElementContentAsString leaves the reader on the node after the element, so the loop advances only
        // when it did not read an element's content (else adjacent elements would be skipped).
        reader.Read();
        while (!reader.EOF)
        {
            if (reader.NodeType != XmlNodeType.Element || reader.LocalName != "annotation" || reader.IsEmptyElement || reader.GetAttribute("cp") is null)
            {
                reader.Read();
                continue;
            }
            var cp = reader.GetAttribute("cp")!;
            var type = reader.GetAttribute("type");
            var text = reader.ReadElementContentAsString().Trim();
            if (text.Length == 0) continue;
            if (type == "tts") tts[cp] = text;
            else
            {
                if (!keywords.TryGetValue(cp, out var list)) keywords[cp] = list = [];
                foreach (var k in text.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                    if (!list.Contains(k, StringComparer.Ordinal)) list.Add(k);
            }
        }
        var result = new Dictionary<string, CldrAnnotation>(StringComparer.Ordinal);
        foreach (var cp in keywords.Keys.Union(tts.Keys))
            result[cp] = new CldrAnnotation(keywords.TryGetValue(cp, out var k) ? k : [], tts.GetValueOrDefault(cp));
        return result;
    }

    /// <summary>Looks an emoji up as written, then without variation selectors (CLDR omits U+FE0F).</summary>
    public static CldrAnnotation? Find(IReadOnlyDictionary<string, CldrAnnotation> annotations, string emoji)
    {
        if (annotations.TryGetValue(emoji, out var a)) return a;
        var stripped = emoji.Replace("\uFE0F", "", StringComparison.Ordinal).Replace("\uFE0E", "", StringComparison.Ordinal);
        return annotations.TryGetValue(stripped, out a) ? a : null;
    }
}
