using ClipSharp.Text;

namespace ClipSharp.Tests.Text;

public class BpeTrainerTests
{
    static readonly string[] Corpus =
    [
        "a photo of a cat", "a photo of a dog", "an emoji of a smiling cat", "a cat and a dog",
        "the dog sleeps", "a smiling face", "a photo of a smiling dog", "cats and dogs",
    ];

    [Fact]
    public void LearnsFrequentPairsDeterministically()
    {
        var a = BpeTrainer.Learn(Corpus, 40);
        var b = BpeTrainer.Learn(Corpus.Reverse(), 40);
        Assert.Equal(a, b);
        // "dog" (5 times) is the most frequent word: it is built by the first merges.
        Assert.Equal(("d", "o"), a[0]);
        Assert.Contains(("do", "g</w>"), a);
        Assert.True(a.Count < 40, "merges stop when no pair occurs twice");
    }

    [Fact]
    public void TrainedFileRoundTripsThroughTheTokenizer()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("bpe-").FullName, "vocab.txt.gz");
        BpeTrainer.TrainToFile(Corpus, 60, path);
        var tok = ClipTokenizer.FromBpeFile(path);
        Assert.Equal(BpeTrainer.Learn(Corpus, 60).Count, tok.MergeCount);
        Assert.Equal(512 + tok.MergeCount + 2, tok.VocabSize);
        Assert.Equal(tok.VocabSize - 1, tok.EndOfTextId);
        var ids = tok.Tokenize("a photo of a smiling cat", 16);
        Assert.Equal(tok.StartOfTextId, ids[0]);
        Assert.Contains(tok.EndOfTextId, ids);
        Assert.All(ids, id => Assert.InRange(id, 0, tok.VocabSize - 1));
        Assert.Equal("a photo of a smiling cat ", tok.Decode(tok.Encode("a photo of a smiling cat")));
        // Words never seen still encode, byte by byte.
        Assert.NotEmpty(tok.Encode("zebra ü"));
    }
}
