using System.Security.Cryptography;
using System.Text;
using ClipSharp.ZeroShot;

namespace ClipSharp.Tests.ZeroShot;

/// <summary>
/// Pins the shipped class-name lists and prompt templates to the CLIP authors' published text, entry for entry.
/// </summary>
/// <remarks>
/// The pinned counts and hashes were computed from the published lists, which were compared entry by entry and
/// character by character with the shipped files (no difference found):
/// <list type="bullet">
/// <item>ImageNet classes, the 80 templates and the 7-template subset: openai/CLIP
/// <c>notebooks/Prompt_Engineering_for_ImageNet.ipynb</c> at 2b49d4e868ad46542732355f3c04fba6aad890bd (the list the
/// paper's ImageNet numbers used; <c>data/prompts.md</c> has no ImageNet section and points to this notebook).</item>
/// <item>Every other dataset: openai/CLIP <c>data/prompts.md</c> at e184f608c5d5e58165682f7c332c3a8b4c1545f2.</item>
/// <item><c>simple</c> ("a photo of a {}.") has no list of its own in either source; it is the paper's default prompt
/// and is the same string as the published VOC2007 template.</item>
/// </list>
/// A hash is SHA-256 over the UTF-8 bytes of the parsed entries joined by "\n". If one of these fails, the data file
/// changed: diff it against the source above before updating a pin.
/// </remarks>
public class PublishedPromptDataTests
{
    public static TheoryData<string, string, int, string> Pins => new()
    {
        { "classes", "cifar10", 10, "bb3914949cecedee6d1257f7f5fdb8f43fa3b2c8095fd1763161caf1b873fe59" },
        { "classes", "cifar100", 100, "60ae3a3ac1355fcfec19c0ea3cb5fde15203ecf3b537cabcf6d5d54688ee9a4d" },
        { "classes", "dtd", 47, "681d23b9cd3c2edec8ff7ea1fd6f5dd92f3b8d1dfb5a43fd0faee72a116c1130" },
        { "classes", "eurosat", 10, "989b723c02a7299719e5c00db25c494581e9ece3d105193f3dc97135efce162e" },
        { "classes", "fgvc_aircraft", 100, "e1c9e72060e63d526dce032008262a95f573b02e802be7be42f0cb6ccd5b4217" },
        { "classes", "flowers102", 102, "5429e1ef6e0e5aa3db2258257b28da08919bf32046a6854cf5f044ff1e8b79fd" },
        { "classes", "food101", 101, "9c0eeb5a368baacb40650cccd4b8cbc4a735bfad22fddc8ba521a99d8892f690" },
        { "classes", "gtsrb", 43, "953036bc5aedbe6ba1f4f38a3d09da17e8e062ca3e4bfed6a8074e9f03f884c6" },
        { "classes", "imagenet", 1000, "571ae1c583b4be7da87519494c52bf405a46af05d5815627c7a0dee997068b60" },
        { "classes", "mnist", 10, "29dd21f55e4611d4c787c2148e39b4e341d4c10701dd03eed360aa55035bdb34" },
        { "classes", "oxford_pets", 37, "c6f4365ced9dc96f7082b1a8a9156ca1df13eb82cb80ae96caea107503b98a3b" },
        { "classes", "pcam", 2, "27352df7ede1fd87a26ed6ec3eb45afcf7d9d043f60737c04a34121a22f75fd6" },
        { "classes", "resisc45", 45, "3c2177013901f0eff00faa98fd8d1614e233afed349791b1276bb5e028b3cead" },
        { "classes", "stl10", 10, "08b234ce7b11dbd3e77d1dacf32b2dac8fcd36efa7d7719ad1def4d8f1153bf4" },
        { "classes", "voc2007", 20, "b8c3f06eeba384caffcdc0575fd84e976557eda6d50dd4520b594c672b65c1c6" },
        { "templates", "cifar10", 18, "9bbf912e1144ca4c7de308d478b5ced7ea3df9e61ce5d100ef184831bb5dc715" },
        { "templates", "cifar100", 18, "9bbf912e1144ca4c7de308d478b5ced7ea3df9e61ce5d100ef184831bb5dc715" },
        { "templates", "dtd", 8, "1f6888d2130f62a4430711bd4d66af9622fba635594f64f7e51c07248cec899e" },
        { "templates", "eurosat", 3, "9bc85d9f1798d03b9991ddfa721493693040d8c222e2f8d8bbf5a0c3ca2507e8" },
        { "templates", "fgvc_aircraft", 2, "91522de75ad4471161537f83b8a0652763a74efa59123fb88a77efc46a5baa3e" },
        { "templates", "flowers102", 1, "bfcd4bbb214d501571cbd68b67ec7b6c86645edc476df3fe0f65c9249d3c50c7" },
        { "templates", "food101", 1, "77a79bac7d9cf25b704d8c51158c1f16659cafee6035c8d63e27172ffaec2340" },
        { "templates", "gtsrb", 3, "a6794061485dcfa26692dc3cbe96aca5a7430e77f2b4b5d4c84d92b90b917348" },
        { "templates", "imagenet", 80, "4f976686fb651bb5803d4689dcd849f75efe0ef19a3c801355bc9a6f03c8a5af" },
        { "templates", "imagenet7", 7, "6ef3883987d224b7949da69fe0b615af152e1560eaac4c5c38555e50c882d415" },
        { "templates", "mnist", 1, "c0341e0a1fdfd8fb441a865f926ed68cb9e470397caae1351be2ed752cccaa7e" },
        { "templates", "oxford_pets", 1, "16a0790f0e45e97e33950cca7bb403ace4980897f60a295992f2e7aeb85507a1" },
        { "templates", "pcam", 1, "7c7758b084ef77fa7f3a24246162fa68d94455cca8e2ad8310799e5a9cd6f6da" },
        { "templates", "resisc45", 18, "8f390b8578e5c3bfdfc4ea0fb339eb003631d3372aee4b91d9438498b0bf0fac" },
        { "templates", "simple", 1, "e8e367e769f86c27d7507382b76c671667da9fa8ae030159a57681a812b0fa33" },
        { "templates", "stl10", 2, "c97a3d1ad58198007966a354d239e288f2f79fa2479aaf7ce6c11f7a6b876efb" },
        { "templates", "voc2007", 1, "e8e367e769f86c27d7507382b76c671667da9fa8ae030159a57681a812b0fa33" },
    };

    static IReadOnlyList<string> Load(string kind, string name) =>
        kind == "classes" ? PromptSets.ClassNames(name) : PromptSets.Templates(name);

    static string Sha256Hex(IEnumerable<string> entries) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", entries))));

    [Theory]
    [MemberData(nameof(Pins))]
    public void ListMatchesThePublishedTextExactly(string kind, string name, int count, string sha256)
    {
        var list = Load(kind, name);
        Assert.Equal(count, list.Count);
        Assert.Equal(sha256, Sha256Hex(list));
    }

    [Fact]
    public void EveryShippedListIsPinned()
    {
        // A list added without being checked against its source (and pinned above) fails here.
        var pinned = Pins.Select(row => ((string)row[0], (string)row[1])).ToHashSet();
        var shipped = PromptSets.ClassNameSetNames.Select(n => ("classes", n))
            .Concat(PromptSets.TemplateSetNames.Select(n => ("templates", n))).ToHashSet();
        Assert.Equal(pinned.OrderBy(p => p), shipped.OrderBy(p => p));
    }

    [Fact]
    public void EntriesArePlainAsciiWithStraightQuotes()
    {
        // The published lists are pure ASCII: straight apostrophes (U+0027) and quotes (U+0022), no accents
        // ("creme brulee", "consomme"), no typographic quotes, no surrounding whitespace. An editor "fixing" any
        // of that changes the tokens and the scores.
        foreach (var (kind, name) in Pins.Select(row => ((string)row[0], (string)row[1])))
            Assert.All(Load(kind, name), e =>
            {
                Assert.True(e.All(ch => ch >= 0x20 && ch < 0x7F), $"{kind}/{name}: non-ASCII or control character in '{e}'");
                Assert.Equal(e.Trim(), e);
            });
    }

    [Fact]
    public void ImageNetNamesThatLookAlikeAreThePublishedOnes()
    {
        var c = PromptSets.ClassNames("imagenet");
        // The two WordNet "crane"s and the two "maillot"s were renamed apart in the notebook...
        Assert.Equal("crane bird", c[134]);
        Assert.Equal("construction crane", c[517]);
        Assert.Equal("tights", c[638]);
        Assert.Equal("one-piece bathing suit", c[639]);
        // ...but two pairs are deliberately left as exact duplicates (projectile/missile, sunglass/sunglasses).
        Assert.Equal("missile", c[657]);
        Assert.Equal("missile", c[744]);
        Assert.Equal("sunglasses", c[836]);
        Assert.Equal("sunglasses", c[837]);
        Assert.Equal(998, c.Distinct(StringComparer.Ordinal).Count());
        // Other edited or easily "corrected" names.
        Assert.Equal("kite (bird of prey)", c[21]);
        Assert.Equal("St. Bernard", c[247]);
        Assert.Equal("red wolf or maned wolf", c[271]);
        Assert.Equal("Geoffroy's spider monkey", c[381]);
        Assert.Equal("iPod", c[605]);
        Assert.Equal("ford model t", c[661]);
        Assert.Equal("metal nail", c[677]);
        Assert.Equal("potter's wheel", c[739]);
        Assert.Equal("consomme", c[925]);
        Assert.Equal("yellow lady's slipper", c[986]);
        Assert.Equal("african grey parrot", c[87]);
    }

    [Fact]
    public void OtherDatasetsKeepTheirPublishedQuirks()
    {
        Assert.Equal("colt's foot", PromptSets.ClassNames("flowers102")[11]);
        Assert.Equal("creme brulee", PromptSets.ClassNames("food101")[27]);
        // Typos in the published GTSRB names are part of the prompts the paper used.
        Assert.Equal("red circle with white horizonal stripe no entry", PromptSets.ClassNames("gtsrb")[17]);
        Assert.Equal("red and white triangle with bicyle warning", PromptSets.ClassNames("gtsrb")[29]);
        // Pets: the 12 cat breeds are capitalised, the dog breeds are not.
        var pets = PromptSets.ClassNames("oxford_pets");
        Assert.Equal("Sphynx", pets[11]);
        Assert.Equal("american bulldog", pets[12]);
        Assert.Equal(
            ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.", "art of the {}.", "a photo of the small {}."],
            PromptSets.Templates("imagenet7"));
    }

    [Fact]
    public void FillGivesTheSameStringAsPythonFormat()
    {
        // The source fills templates with Python's template.format(classname). Every shipped template has exactly
        // one "{}" and no other brace, so format() is a plain substitution; check Fill against that for every pair.
        foreach (var set in PromptSets.TemplateSetNames)
        {
            var classes = set switch
            {
                "imagenet7" or "simple" => PromptSets.ClassNames("imagenet"),
                _ => PromptSets.ClassNames(set),
            };
            foreach (var t in PromptSets.Templates(set))
            {
                int at = t.IndexOf("{}", StringComparison.Ordinal);
                Assert.True(at >= 0, $"{set}: '{t}' has no {{}}");
                Assert.Equal(1, t.Count(ch => ch == '{'));
                Assert.Equal(1, t.Count(ch => ch == '}'));
                foreach (var c in classes)
                {
                    Assert.DoesNotContain('{', c);
                    Assert.DoesNotContain('}', c);
                    Assert.Equal(t[..at] + c + t[(at + 2)..], PromptSets.Fill(t, c));
                }
            }
        }
        // Spot checks: inner quotes, a template with no final period, a trailing period after the class name.
        Assert.Equal("a photo of the number: \"7\".", PromptSets.Fill(PromptSets.Templates("mnist")[0], "7"));
        Assert.Equal("a zoomed in photo of a \"stop\" traffic sign.", PromptSets.Fill(PromptSets.Templates("gtsrb")[0], "stop"));
        Assert.Equal("this is a photo of lymph node", PromptSets.Fill(PromptSets.Templates("pcam")[0], "lymph node"));
        Assert.Equal("a photo of many St. Bernard.", PromptSets.Fill(PromptSets.Templates("imagenet")[1], "St. Bernard"));
    }
}
