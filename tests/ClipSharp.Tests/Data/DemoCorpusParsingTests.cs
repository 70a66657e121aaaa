using System.IO.Compression;
using System.Text;
using ClipSharp.Data.Demo;

namespace ClipSharp.Tests.Data;

public class EmojiTestFileTests
{
    private static readonly string[] Sample =
    [
        "# emoji-test.txt",
        "# group: Smileys & Emotion",
        "",
        "# subgroup: face-smiling",
        "1F600                                                  ; fully-qualified     # 😀 E1.0 grinning face",
        "263A FE0F                                              ; fully-qualified     # ☺️ E0.6 smiling face",
        "263A                                                   ; unqualified         # ☺ E0.6 smiling face",
        "# subgroup: face-affection",
        "1F468 200D 1F469 200D 1F467                            ; fully-qualified     # 👨‍👩‍👧 E2.0 family: man, woman, girl",
        "# Smileys & Emotion subtotal:		3",
        "# group: Component",
        "# subgroup: skin-tone",
        "1F3FB                                                  ; component           # 🏻 E1.0 light skin tone",
        "not a data line",
    ];

    [Fact]
    public void Parses_codepoints_status_name_group_and_subgroup()
    {
        var entries = EmojiTestFile.Parse(Sample);
        Assert.Equal(5, entries.Count);
        var grin = entries[0];
        Assert.Equal([0x1F600], grin.Codepoints);
        Assert.Equal("fully-qualified", grin.Status);
        Assert.Equal("grinning face", grin.Name);
        Assert.Equal("Smileys & Emotion", grin.Group);
        Assert.Equal("face-smiling", grin.Subgroup);
        Assert.Equal("😀", grin.Text);
        Assert.Equal("1F600", grin.Key);

        Assert.Equal("263A-FE0F", entries[1].Key);
        Assert.Equal("unqualified", entries[2].Status);
        var family = entries[3];
        Assert.Equal("family: man, woman, girl", family.Name);
        Assert.Equal("face-affection", family.Subgroup);
        Assert.Equal("1F468-200D-1F469-200D-1F467", family.Key);
        Assert.Equal("Component", entries[4].Group);
        Assert.True(entries[4].HasSkinTone);
    }

    [Fact]
    public void Rejects_malformed_lines()
    {
        Assert.Null(EmojiTestFile.ParseLine("XYZ ; fully-qualified # x E1.0 thing", "g", "s"));
        Assert.Null(EmojiTestFile.ParseLine("1F600 fully-qualified grinning face", "g", "s"));
        Assert.Null(EmojiTestFile.ParseLine("110000 ; fully-qualified # x E1.0 out of range", "g", "s"));
    }

    [Fact]
    public void Concept_selection_keeps_fully_qualified_non_component_without_skin_tones()
    {
        var entries = EmojiTestFile.Parse(Sample.Append("1F44B 1F3FB ; fully-qualified # 👋🏻 E1.0 waving hand: light skin tone"));
        var annotations = new Dictionary<string, CldrAnnotation>
        {
            ["😀"] = new(["face", "grin", "grinning face"], "grinning face"),
            ["☺"] = new(["face", "outlined", "relaxed", "smile"], "smiling face"),
        };
        var concepts = DemoCorpusBuilder.SelectConcepts(entries, annotations);
        Assert.Equal(["1F600", "263A-FE0F", "1F468-200D-1F469-200D-1F467"], concepts.Select(c => c.Entry.Key));
        Assert.Equal(["face", "grin"], concepts[0].Keywords);
        Assert.Equal(["an emoji of grinning face", "grinning face, face, grin"], concepts[0].Captions());
        // CLDR omits U+FE0F: the lookup falls back to the bare sequence.
        Assert.Equal(4, concepts[1].Keywords.Count);
        Assert.Equal(["an emoji of family: man, woman, girl"], concepts[2].Captions());
    }
}

public class CldrAnnotationTests
{
    private const string Xml = """
        <?xml version="1.0" encoding="UTF-8" ?>
        <!DOCTYPE ldml SYSTEM "../../common/dtd/ldml.dtd">
        <ldml>
          <identity><version number="$Revision$"/><language type="en"/></identity>
          <annotations>
            <annotation cp="😀">face | grin | grinning face</annotation>
            <annotation cp="😀" type="tts">grinning face</annotation>
            <annotation cp="{">brace | bracket</annotation>
            <annotation cp="🫠" type="tts">melting face</annotation>
            <annotation cp="&amp;">ampersand | and</annotation>
          </annotations>
        </ldml>
        """;

    [Fact]
    public void Parses_keywords_and_tts_names_without_fetching_the_dtd()
    {
        var a = CldrAnnotations.Parse(new MemoryStream(Encoding.UTF8.GetBytes(Xml)));
        Assert.Equal(["face", "grin", "grinning face"], a["😀"].Keywords);
        Assert.Equal("grinning face", a["😀"].Tts);
        Assert.Equal(["brace", "bracket"], a["{"].Keywords);
        Assert.Null(a["{"].Tts);
        Assert.Empty(a["🫠"].Keywords);
        Assert.Equal("melting face", a["🫠"].Tts);
        Assert.Equal(["ampersand", "and"], a["&"].Keywords);
    }

    [Fact]
    public void Find_falls_back_to_the_sequence_without_variation_selectors()
    {
        var a = new Dictionary<string, CldrAnnotation> { ["☺"] = new(["smile"], "smiling face") };
        Assert.Equal("smiling face", CldrAnnotations.Find(a, "☺\uFE0F")?.Tts);
        Assert.Null(CldrAnnotations.Find(a, "😀"));
    }

    [Fact]
    public void Read_merges_files_earlier_first()
    {
        var dir = Directory.CreateTempSubdirectory("clipsharp-cldr-");
        try
        {
            var first = Path.Combine(dir.FullName, "a.xml");
            var second = Path.Combine(dir.FullName, "b.xml");
            File.WriteAllText(first, "<ldml><annotations><annotation cp=\"x\">one | two</annotation></annotations></ldml>");
            File.WriteAllText(second, "<ldml><annotations><annotation cp=\"x\">three</annotation><annotation cp=\"x\" type=\"tts\">ex</annotation><annotation cp=\"y\">why</annotation></annotations></ldml>");
            var merged = CldrAnnotations.Read(first, second);
            Assert.Equal(["one", "two"], merged["x"].Keywords);
            Assert.Equal("ex", merged["x"].Tts);
            Assert.Equal(["why"], merged["y"].Keywords);
        }
        finally { dir.Delete(true); }
    }
}

public class ClipArtMetadataTests
{
    private const string Svg = """
        <?xml version="1.0" ?>
        <svg height="100" width="100" xmlns="http://www.w3.org/2000/svg">
          <metadata>
            <rdf:RDF xmlns:cc="http://web.resource.org/cc/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
              <cc:Work rdf:about="">
                <dc:title>Ice Cream  Cone
                  (1 scoop)</dc:title>
                <dc:description>A cone of vanilla ice cream</dc:description>
                <dc:subject>
                  <rdf:Bag>
                    <rdf:li>dessert</rdf:li>
                    <rdf:li>food</rdf:li>
                    <rdf:li>hash(0x86a0bb0)</rdf:li>
                    <rdf:li></rdf:li>
                    <rdf:li>ice_cream</rdf:li>
                    <rdf:li>cone</rdf:li>
                  </rdf:Bag>
                </dc:subject>
                <dc:publisher><cc:Agent rdf:about="http://www.openclipart.org/"><dc:title>Open Clip Art Library</dc:title></cc:Agent></dc:publisher>
              </cc:Work>
            </rdf:RDF>
          </metadata>
          <path d="M 0 0 L 10 10"/>
        </svg>
        """;

    [Fact]
    public void Reads_the_work_title_description_and_keywords_not_the_publisher_title()
    {
        var m = ClipArtMetadataReader.Parse(new MemoryStream(Encoding.UTF8.GetBytes(Svg)));
        Assert.Equal("Ice Cream Cone (1 scoop)", m.Title);
        Assert.Equal("A cone of vanilla ice cream", m.Description);
        Assert.Equal(["dessert", "food", "hash(0x86a0bb0)", "ice_cream", "cone"], m.Keywords);
    }

    [Fact]
    public void Publisher_title_is_not_taken_when_the_work_has_none()
    {
        const string svg = """
            <svg xmlns:cc="http://web.resource.org/cc/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
              <metadata><rdf:RDF><cc:Work><dc:publisher><cc:Agent><dc:title>Open Clip Art Library</dc:title></cc:Agent></dc:publisher></cc:Work></rdf:RDF></metadata>
            </svg>
            """;
        var m = ClipArtMetadataReader.Parse(new MemoryStream(Encoding.UTF8.GetBytes(svg)));
        Assert.Null(m.Title);
        Assert.Empty(m.Keywords);
    }

    [Fact]
    public void Adjacent_elements_are_all_read()
    {
        const string svg = "<svg xmlns:cc=\"http://web.resource.org/cc/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><metadata><rdf:RDF><cc:Work><dc:title>Red Apple</dc:title><dc:description>A shiny apple</dc:description><dc:subject><rdf:Bag><rdf:li>fruit</rdf:li><rdf:li>food</rdf:li></rdf:Bag></dc:subject></cc:Work></rdf:RDF></metadata></svg>";
        var m = ClipArtMetadataReader.Parse(new MemoryStream(Encoding.UTF8.GetBytes(svg)));
        Assert.Equal("Red Apple", m.Title);
        Assert.Equal("A shiny apple", m.Description);
        Assert.Equal(["fruit", "food"], m.Keywords);
    }

    [Theory]
    [InlineData("Ice Cream Cone (1 scoop)")]
    [InlineData("Blue Eye")]
    [InlineData("Route 66")]
    [InlineData("magnifying glass")]
    public void Keeps_descriptive_titles(string title) => Assert.True(ClipArtMetadataReader.IsDescriptiveTitle(title));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("ab")]
    [InlineData("12345")]
    [InlineData("Untitled")]
    [InlineData("drawing")]
    [InlineData("Switch_HP_2524")]
    [InlineData("arki_arrow_left")]
    [InlineData("guitar1")]
    [InlineData("R16 sibmission")]
    [InlineData("house.svg")]
    [InlineData("Part of the Flat Icon Collection (Wed Aug 25 23:29:46 2004)")]
    [InlineData("Clipart by Nicu Buculei - arrow08_4")]
    [InlineData("Lemon SVG theme")]
    [InlineData("blueberry - iconset")]
    public void Rejects_titles_that_are_not_descriptions(string? title) => Assert.False(ClipArtMetadataReader.IsDescriptiveTitle(title));

    [Fact]
    public void Cleans_keywords_and_builds_captions()
    {
        var m = ClipArtMetadataReader.Parse(new MemoryStream(Encoding.UTF8.GetBytes(Svg)));
        Assert.Equal(["dessert", "food", "ice cream"], ClipArtMetadataReader.CleanKeywords(m.Keywords, m.Title!));
        Assert.Equal(
            ["Ice Cream Cone (1 scoop)", "Ice Cream Cone (1 scoop), dessert, food, ice cream", "A cone of vanilla ice cream"],
            DemoCorpusBuilder.ClipArtCaptions(m));
    }

    [Theory]
    [InlineData("An Adelaide Rosella.", "An Adelaide Rosella.")]
    [InlineData("– Because a brain is a terrible thing to waste…", "Because a brain is a terrible thing to waste…")]
    [InlineData("  ", null)]
    [InlineData(null, null)]
    public void Stamp_caption_is_the_trimmed_first_line(string? line, string? expected) => Assert.Equal(expected, DemoCorpusBuilder.StampCaption(line));
}

public class HeldOutSelectionTests
{
    private static List<SubgroupInfo> Subgroups()
    {
        var list = new List<SubgroupInfo>();
        string[] groups = ["Animals & Nature", "Food & Drink", "Objects", "Symbols", "Travel & Places", "Activities", "People & Body", "Smileys & Emotion", "Flags", "Component"];
        for (int g = 0; g < groups.Length; g++)
            for (int s = 0; s < 8; s++)
                list.Add(new SubgroupInfo(groups[g], $"sub-{g}-{s}", 3 + (g * 7 + s * 5) % 30));
        return list;
    }

    [Fact]
    public void Same_seed_gives_the_same_choice_whatever_the_input_order()
    {
        var a = HeldOutSelection.Choose(Subgroups(), 42);
        var shuffled = Subgroups().OrderBy(s => s.Subgroup.GetHashCode(StringComparison.Ordinal) ^ 0x5bd1e995).ToList();
        var b = HeldOutSelection.Choose(shuffled, 42);
        Assert.Equal(a, b);
        Assert.NotEqual(a, HeldOutSelection.Choose(Subgroups(), 43));
    }

    [Fact]
    public void Meets_the_minimums_and_respects_the_rules()
    {
        var rules = new HeldOutRules();
        var chosen = HeldOutSelection.Choose(Subgroups(), 7, rules);
        Assert.True(chosen.Count >= rules.MinSubgroups);
        Assert.True(chosen.Sum(s => s.Concepts) >= rules.TargetConcepts);
        Assert.DoesNotContain(chosen, s => s.Group is "Flags" or "Component");
        Assert.All(chosen, s => Assert.InRange(s.Concepts, rules.MinSize, rules.MaxSize));
        Assert.All(chosen.GroupBy(s => s.Group), g => Assert.True(g.Count() <= rules.MaxPerGroup));
        Assert.Equal(chosen.OrderBy(s => s.Group, StringComparer.Ordinal).ThenBy(s => s.Subgroup, StringComparer.Ordinal), chosen);
    }

    [Fact]
    public void Seeded_unit_is_stable_and_in_range()
    {
        var x = HeldOutSelection.SeededUnit(1, "images/emoji/noto/1F600.png");
        Assert.Equal(x, HeldOutSelection.SeededUnit(1, "images/emoji/noto/1F600.png"));
        Assert.InRange(x, 0, 1);
        Assert.NotEqual(x, HeldOutSelection.SeededUnit(2, "images/emoji/noto/1F600.png"));
        // The hash is SHA-256 based, not .NET's randomised string hash: pin one value.
        Assert.Equal(HeldOutSelection.SeededRank(1, "a"), HeldOutSelection.SeededRank(1, "a"));
        Assert.Equal(64, HeldOutSelection.SeededRank(1, "a").Length);
    }
}

public class IdxFileTests
{
    [Fact]
    public void Round_trips_through_gzip()
    {
        var data = Enumerable.Range(0, 2 * 3 * 4).Select(i => (byte)(i * 7)).ToArray();
        var dir = Directory.CreateTempSubdirectory("clipsharp-idx-");
        try
        {
            var path = Path.Combine(dir.FullName, "x-idx3-ubyte.gz");
            using (var f = File.Create(path))
            using (var gz = new GZipStream(f, CompressionLevel.Fastest))
                IdxFile.Write(gz, new IdxArray([2, 3, 4], data));
            var read = IdxFile.Read(path);
            Assert.Equal([2, 3, 4], read.Dimensions);
            Assert.Equal(2, read.Count);
            Assert.Equal(12, read.ItemSize);
            Assert.Equal(data[12..], read.Item(1).ToArray());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Reads_the_big_endian_header()
    {
        byte[] bytes = [0, 0, 0x08, 1, 0, 0, 0, 3, 5, 6, 7];
        var a = IdxFile.Read(new MemoryStream(bytes));
        Assert.Equal([3], a.Dimensions);
        Assert.Equal([5, 6, 7], a.Data);
    }

    [Theory]
    [InlineData(new byte[] { 1, 0, 0x08, 1, 0, 0, 0, 1, 0 })]
    [InlineData(new byte[] { 0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2 })]
    public void Rejects_bad_files(byte[] bytes) => Assert.Throws<ClipSharpException>(() => IdxFile.Read(new MemoryStream(bytes)));
}

public class ManifestAndCsvTests
{
    [Fact]
    public void Manifest_round_trips_with_snake_case_names()
    {
        var m = new CorpusManifest
        {
            Seed = 5,
            BuiltAt = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero),
            BuildSeconds = 12.5,
            Packages = [new SourcePackage("unicode-data", "15.0.0-1", "deb", "Unicode-DFS", "ab")],
            HeldOutSubgroups = [new HeldOutSubgroup("Food & Drink", "drink", 20)],
            TrainArtists = ["noto"],
        };
        m.Sources["emoji-noto"] = new SourceCounts { Images = 3, Captions = 6, Unreadable = 1 };
        m.Splits["train"] = new SplitInfo { File = "splits/train.csv", Rows = 6, Images = 3 };
        var json = m.ToJson();
        Assert.Contains("\"held_out_subgroups\"", json);
        Assert.Contains("\"build_seconds\": 12.5", json);
        Assert.Contains("\"emoji-noto\"", json);
        Assert.DoesNotContain("classes_file", json); // nulls are left out

        var dir = Directory.CreateTempSubdirectory("clipsharp-manifest-");
        try
        {
            var path = Path.Combine(dir.FullName, "manifest.json");
            m.Write(path);
            Assert.Single(Directory.GetFiles(dir.FullName)); // no temporary file left behind
            var back = CorpusManifest.Read(path);
            Assert.Equal(5, back.Seed);
            Assert.Equal(m.BuiltAt, back.BuiltAt);
            Assert.Equal("15.0.0-1", back.Packages[0].Version);
            Assert.Equal(1, back.Sources["emoji-noto"].Unreadable);
            Assert.Equal("drink", back.HeldOutSubgroups[0].Subgroup);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Csv_quotes_only_when_needed_and_parses_back()
    {
        Assert.Equal("a,\"b, c\",\"say \"\"hi\"\"\",d", Csv.Line("a", "b, c", "say \"hi\"", "d"));
        var rows = Csv.Parse("image,caption\nx.png,\"an emoji of family: man, woman, girl\"\ny.png,\"T-shirt/top\"\n");
        Assert.Equal(3, rows.Count);
        Assert.Equal(["x.png", "an emoji of family: man, woman, girl"], rows[1]);
        Assert.Equal(["y.png", "T-shirt/top"], rows[2]);
    }

    [Theory]
    [InlineData("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: GPL-2\n\nFiles: debian/*\nLicense: GPL-3\n\nFiles: fonts/*\nLicense: SIL-1.1\n\nLicense: GPL-2\n text\n", "GPL-2 AND SIL-1.1")]
    [InlineData("This package was debianized by someone.\n creative commons Public Domain Dedication\n", "public-domain")]
    [InlineData("Upstream: somebody\nLicense: custom\n", "see copyright file")]
    public void Licence_comes_from_the_copyright_file(string text, string expected) => Assert.Equal(expected, DebianCopyright.License(text));
}
