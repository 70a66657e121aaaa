using ClipSharp.Data.Readers;
using ClipSharp.Tests.Evaluation;

namespace ClipSharp.Tests.Data.Readers;

public class DatasetReaderTests
{
    [Fact]
    public void ImageFolderSortsClassesAndFilesAndIgnoresNonImages()
    {
        using var tmp = new TestData.TempDir();
        TestData.ImageFolder(tmp["f"], perClass: 2, corrupt: true);
        Directory.CreateDirectory(tmp["f/a_class"]);
        File.WriteAllBytes(tmp["f/a_class/z.png"], TestData.Png(1, 2, 3));
        var ds = new ImageFolderDataset(tmp["f"]);
        Assert.Equal(["a class", "blue", "green", "red"], ds.ClassNames);
        var items = ds.Images().ToList();
        Assert.Equal(1 + 2 + 3 + 2, items.Count);
        Assert.Equal(0, items[0].Label);
        Assert.EndsWith("broken.jpg", items[3].ImagePath); // green: broken.jpg sorts before img0.png
        Assert.Equal(items.Select(i => i.Id), ds.Images().Select(i => i.Id)); // deterministic
        Assert.All(ds.Pairs(), p => Assert.Single(p.Captions));
        Assert.Throws<ClipSharpException>(() => new ImageFolderDataset(tmp["f"], ["x"]));
    }

    [Fact]
    public void CsvByColumnNameGroupsCaptionsAndSkipsMissingFiles()
    {
        using var tmp = new TestData.TempDir();
        File.WriteAllBytes(tmp["a.png"], TestData.Png(1, 1, 1));
        File.WriteAllBytes(tmp["b.png"], TestData.Png(2, 2, 2));
        File.WriteAllText(tmp["data.csv"],
            "id,file,species,caption\n" +
            "1,a.png,cat,\"a cat, sitting\"\n" +
            "2,missing.png,dog,nothing\n" +
            "3,b.png,dog,\"a \"\"dog\"\"\"\n" +
            "4,a.png,cat,another caption of the cat\n");
        var ds = new CsvDataset(tmp["data.csv"], new TableColumns { ImageColumn = "file", LabelColumn = "species" });
        Assert.Equal("caption", ds.CaptionColumn);
        Assert.Equal(["cat", "dog"], ds.ClassNames);
        Assert.Equal(2, ds.Count);
        var skipped = Assert.Single(ds.Skipped.Items);
        Assert.Contains("missing.png", skipped.Id);
        var pairs = ds.Pairs().ToList();
        Assert.Equal(["a cat, sitting", "another caption of the cat"], pairs[0].Captions);
        Assert.Equal(["a \"dog\""], pairs[1].Captions);
        Assert.Equal([0, 1], ds.Images().Select(i => i.Label));

        File.WriteAllText(tmp["data.tsv"], "image\tlabel\na.png\t1\nb.png\t0\n");
        var tsv = new CsvDataset(tmp["data.tsv"], new TableColumns { ClassNames = ["x", "y"] });
        Assert.Equal([1, 0], tsv.Images().Select(i => i.Label));
        var err = Assert.Throws<ClipSharpException>(() => new CsvDataset(tmp["data.tsv"], new TableColumns { ImageColumn = "nope" }));
        Assert.Contains("image, label", err.Message);
    }

    [Fact]
    public void WebDatasetStreamsSamplesAndReportsBrokenOnes()
    {
        using var tmp = new TestData.TempDir();
        var img = TestData.Png(10, 20, 30);
        TestData.Tar(tmp["shard-000.tar"], [
            ("s/0001.jpg", img), ("s/0001.txt", TestData.Utf8("first caption\nsecond caption\n")), ("s/0001.cls", TestData.Utf8("2")),
            ("s/0002.png", img), ("s/0002.json", TestData.Utf8("{\"caption\":\"json caption\",\"label\":0}")),
            ("s/0003.txt", TestData.Utf8("no image here")),
        ]);
        TestData.Tar(tmp["shard-001.tar"], [("0004.seg.png", img), ("0004.cls", TestData.Utf8("1"))]);
        var ds = new WebDatasetReader(tmp["shard-{000..001}.tar"]);
        Assert.Equal(2, ds.Shards.Count);
        Assert.Equal(["0", "1", "2"], ds.ClassNames);
        var pairs = ds.Pairs().ToList();
        Assert.Equal(["shard-000.tar:s/0001", "shard-000.tar:s/0002"], pairs.Select(p => p.Id));
        Assert.Equal(["first caption", "second caption"], pairs[0].Captions);
        Assert.Equal(["json caption"], pairs[1].Captions);
        Assert.NotNull(pairs[0].ImageBytes);
        Assert.Contains(ds.Skipped.Items, s => s.Id == "shard-000.tar:s/0003" && s.Reason.Contains("no image"));

        var labelled = new WebDatasetReader(tmp.Path);
        Assert.Equal([2, 0], labelled.Images().Select(i => i.Label).Take(2));
        Assert.Equal(["0004", "seg.png"], new[] { WebDatasetReader.SplitMemberName("0004.seg.png").Key, WebDatasetReader.SplitMemberName("0004.seg.png").Extension });

        // A truncated shard: samples before the damage are kept, the rest is reported.
        var bytes = File.ReadAllBytes(tmp["shard-000.tar"]);
        File.WriteAllBytes(tmp["cut.tar"], bytes[..(bytes.Length / 2)]);
        var cut = new WebDatasetReader(tmp["cut.tar"]);
        var kept = cut.Pairs().ToList();
        Assert.True(kept.Count < 2);
        Assert.Contains(cut.Skipped.Items, s => s.Reason.Contains("damaged tar shard"));
    }

    [Fact]
    public void BraceExpansionKeepsZeroPaddingAndOrder()
    {
        Assert.Equal(["a-08.tar", "a-09.tar", "a-10.tar"], WebDatasetReader.ExpandBraces("a-{08..10}.tar"));
        Assert.Equal(["x1y", "x1z", "x2y", "x2z"], WebDatasetReader.ExpandBraces("x{1,2}{y,z}"));
    }
}
