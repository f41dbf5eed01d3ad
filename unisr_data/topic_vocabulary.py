"""English words per latent topic for the synthetic generator: topics drive both texts and clicks."""
from __future__ import annotations

#: topic -> (category, words). Words are real English so a sentence encoder (MiniLM) can see the topic.
TOPICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "coffee": ("food_drink", ("espresso", "latte", "beans", "roast", "grinder", "cappuccino", "barista", "mug", "arabica", "brew", "french press", "decaf")),
    "cooking": ("food_drink", ("skillet", "recipe", "knife", "cutting board", "spices", "oven", "saucepan", "pasta", "baking", "wok", "apron", "olive oil")),
    "running": ("sports", ("running shoes", "marathon", "jogging", "sneakers", "track", "sprint", "stopwatch", "trail", "sweatband", "race", "insoles", "pace")),
    "fitness": ("sports", ("dumbbells", "yoga mat", "gym", "protein", "kettlebell", "workout", "treadmill", "resistance band", "pilates", "squat rack", "stretching", "barbell")),
    "gaming": ("electronics", ("console", "controller", "video game", "headset", "joystick", "arcade", "gamepad", "esports", "graphics card", "keyboard", "multiplayer", "quest")),
    "phones": ("electronics", ("smartphone", "charger", "phone case", "screen protector", "earbuds", "battery", "cable", "android", "sim card", "power bank", "camera lens", "wireless")),
    "photography": ("electronics", ("camera", "tripod", "lens", "flash", "shutter", "portrait", "landscape", "memory card", "zoom", "aperture", "film", "photo album")),
    "travel": ("services", ("flight", "hotel", "suitcase", "passport", "beach", "airport", "backpack", "resort", "cruise", "tour", "visa", "luggage")),
    "finance": ("services", ("savings", "loan", "credit card", "insurance", "mortgage", "investment", "budget", "pension", "stocks", "bank account", "tax", "wallet")),
    "health": ("services", ("doctor", "pharmacy", "vitamins", "dentist", "clinic", "checkup", "medicine", "therapy", "hospital", "vaccine", "nurse", "prescription")),
    "pets": ("home", ("dog food", "cat litter", "leash", "aquarium", "puppy", "kitten", "pet bed", "chew toy", "bird cage", "collar", "veterinarian", "grooming")),
    "gardening": ("home", ("seeds", "shovel", "flowers", "soil", "watering can", "tomatoes", "compost", "greenhouse", "lawn mower", "pruning shears", "tulips", "hose")),
    "baby": ("home", ("diapers", "stroller", "crib", "baby bottle", "pacifier", "onesie", "car seat", "teething", "nursery", "baby formula", "bib", "rattle")),
    "fashion": ("apparel", ("dress", "jeans", "jacket", "handbag", "scarf", "boots", "sunglasses", "necklace", "blouse", "sweater", "earrings", "belt")),
    "books": ("media", ("novel", "paperback", "mystery", "biography", "poetry", "bookshelf", "audiobook", "fantasy", "author", "library", "bestseller", "thriller")),
    "music": ("media", ("guitar", "piano", "concert", "vinyl", "drums", "violin", "headphones", "playlist", "microphone", "ukulele", "album", "orchestra")),
}

TOPIC_NAMES = tuple(TOPICS)
CATEGORIES = tuple(sorted({category for category, _ in TOPICS.values()}))

#: Topic-free words mixed into item texts so texts are not pure topic lists.
ITEM_ADJECTIVES = ("premium", "classic", "compact", "portable", "deluxe", "budget", "modern", "vintage", "eco", "professional", "everyday", "limited edition")
#: Topic-free query openers.
QUERY_PREFIXES = ("", "best", "cheap", "buy", "top rated", "how to choose", "discount", "near me")
